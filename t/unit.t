# Runs the cmocka unit test binary of every t/unit/test_*.c (built by
# `make` into build/unit/, or LLMD_UNIT_DIR) as one subtest each: it passes
# iff the binary exits 0; its TAP output (cmocka's
# CMOCKA_MESSAGE_OUTPUT=TAP) is shown only when it fails.  A binary that is
# missing or older than its source fails its subtest: a unit test that did
# not build is never skipped silently.  Each binary runs in an empty
# temporary directory with LLMD_TEST_ROOT naming the checkout
# (t/unit/test_data.h): a test that opens a file by a relative path fails.
use strict;
use warnings;
use Cwd ();
use File::Basename ();
use File::Temp ();
use POSIX ();
use Test::More;
use Time::HiRes ();

my $root = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/..');
chdir $root or die "cannot chdir to $root: $!";

# Per binary; unit tests are meant to take well under 10 s.
my $limit = $ENV{LLMD_UNIT_TIMEOUT} || 60;

my $dir = $ENV{LLMD_UNIT_DIR} || 'build/unit';
my $work = File::Temp::tempdir('llmd-unit-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $make = $dir =~ m{(^|/)build-san/unit/?$} ? 'make unit SAN=address'
                                              : 'make unit';

my @sources = sort glob('t/unit/test_*.c');
if (!@sources) {
    fail('t/unit/ has unit tests');
    done_testing();
    exit;
}

# Binaries without a source (a test removed or renamed) are not run.
my %source = map { File::Basename::basename($_, '.c') => $_ } @sources;
for my $bin (sort glob("$dir/*")) {
    my $name = File::Basename::basename($bin);
    note("$bin: not run, no t/unit/$name.c") unless $source{$name};
}

# Why the binary of a source cannot be run, or undef.
sub not_runnable {
    my ($src, $bin) = @_;
    return "$bin is missing: $src did not build? Run `$make`"
        unless -f $bin && -x _;
    my $src_mtime = (Time::HiRes::stat($src))[9];
    my $bin_mtime = (Time::HiRes::stat($bin))[9];
    return "$bin is older than $src: run `$make`"
        if $bin_mtime < $src_mtime;
    return undef;
}

# Run one binary with a deadline; returns (wait status, output, timed out).
sub run_binary {
    my ($bin) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $r;
        POSIX::setpgid(0, 0);
        open STDOUT, '>&', $w or POSIX::_exit(126);
        open STDERR, '>&', $w or POSIX::_exit(126);
        open STDIN, '<', '/dev/null';
        $ENV{CMOCKA_MESSAGE_OUTPUT} = 'TAP';
        $ENV{LLMD_TEST_ROOT} //= $root;
        $bin = "$root/$bin" unless $bin =~ m{^/};
        chdir $work or POSIX::_exit(126);
        # For a sanitizer build (make ... SAN=address): where UB happened.
        $ENV{UBSAN_OPTIONS} //= 'print_stacktrace=1';
        { no warnings 'exec'; exec { $bin } $bin; }
        print STDERR "cannot run $bin: $!\n";
        POSIX::_exit(127);
    }
    close $w;
    my $out = '';
    my $timed_out = 0;
    my $deadline = Time::HiRes::time() + $limit;
    my $rin = '';
    vec($rin, fileno($r), 1) = 1;
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        if ($left <= 0) {
            $timed_out = 1;
            kill 'KILL', -$pid;
            last;
        }
        my $n = select(my $rout = $rin, undef, undef, $left);
        next if $n < 0 && $!{EINTR};
        next if $n == 0;
        my $got = sysread($r, $out, 65536, length $out);
        last if !$got;
    }
    close $r;
    waitpid($pid, 0);
    return ($?, $out, $timed_out);
}

for my $src (@sources) {
    my $name = File::Basename::basename($src, '.c');
    my $bin = "$dir/$name";
    subtest $name => sub {
        my $why_not = not_runnable($src, $bin);
        ok(!defined $why_not, "$bin is built from the current $src")
            or diag($why_not);
        return if defined $why_not;
        my ($status, $out, $timed_out) = run_binary($bin);
        my $why = $timed_out ? "killed after ${limit}s"
                : $status & 127 ? 'killed by signal ' . ($status & 127)
                : $status ? 'exit status ' . ($status >> 8)
                : '';
        ok(!$status && !$timed_out, "$name exits 0")
            or diag("$bin: $why\n$out");
        my $passed = () = $out =~ /^ok \d+/mg;
        note("$name: $passed cmocka tests passed");
    };
}

done_testing();
