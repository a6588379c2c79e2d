# Runs every cmocka unit test binary in build/unit/ (built by `make`) as one
# subtest each: it passes iff the binary exits 0; its TAP output (cmocka's
# CMOCKA_MESSAGE_OUTPUT=TAP) is shown only when it fails.
use strict;
use warnings;
use Cwd ();
use File::Basename ();
use POSIX ();
use Test::More;
use Time::HiRes ();

my $root = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/..');
chdir $root or die "cannot chdir to $root: $!";

# Per binary; unit tests are meant to take well under 10 s.
my $limit = $ENV{LLMD_UNIT_TIMEOUT} || 60;

my $dir = $ENV{LLMD_UNIT_DIR} || 'build/unit';
my @bins = grep { -f $_ && -x _ } sort glob("$dir/*");
if (!@bins) {
    fail("$dir/ has unit test binaries");
    diag("no unit test binaries in $dir/: run `make` (or `make unit`) "
         . 'first');
    done_testing();
    exit;
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

for my $bin (@bins) {
    my $name = File::Basename::basename($bin);
    subtest $name => sub {
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
