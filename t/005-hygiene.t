# The suite cleans up after itself and files can run side by side:
# - a test that is killed (SIGKILL, SIGTERM, SIGINT) or dies on a failed
#   check leaves no helper process (vllm-sim started through Llmd::Proc)
#   and, for SIGTERM and SIGINT, no nginx (the Lite harness stops it);
# - a test refuses ports someone else listens on, with a message naming
#   them, instead of testing the leftover;
# - every test file has its own port block and server root (Llmd::Ports),
#   and no test file names a fixed port of its own.
use strict;
use warnings;
use Cwd ();
use File::Basename ();
use File::Temp ();
use IO::Socket::INET;
use POSIX ();
use Test::More;
use lib 't/lib';
use Llmd::Ports qw(port);
use Llmd::Util ();

my $root = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/..');
chdir $root or die "chdir $root: $!";
my $sim = "$root/build/bin/vllm-sim";
plan skip_all => "$sim not built (make build/bin/vllm-sim)" unless -x $sim;
my $dir = File::Temp::tempdir('llmd-005-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub running {
    my ($pid) = @_;
    open(my $st, '<', "/proc/$pid/stat") or return 0;
    my $line = <$st> // '';
    return $line =~ /\)\s+[^Z]\s/ ? 1 : 0;      # a zombie has exited
}

sub spew {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
}

# A test process (perl -I t/lib SCRIPT) whose stdout we read; returns its
# pid and the read handle.
sub start_child {
    my ($script, %env) = @_;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if ($pid == 0) {
        @ENV{ keys %env } = values %env;
        open STDERR, '>', "$script.err";
        exec $^X, "-I$root/t/lib", $script or POSIX::_exit(127);
    }
    return ($pid, $out);
}

# ---- a test that starts vllm-sim, then is killed or fails ------------------
my $sim_test = "$dir/sim-test.pl";
spew($sim_test, <<'EOF');
use strict;
use warnings;
use Llmd::Proc;
my ($port, $then) = @ARGV;
my $pid = Llmd::Proc::sim(args => [ '--port', $port, '--quiet' ],
                          ports => [ $port ], health => [ "127.0.0.1:$port" ]);
$| = 1;
print "$pid\n";
die "a failed check\n" if $then eq 'die';
sleep 60;
EOF

my $n = 0;
for my $end (qw(KILL TERM INT die)) {
    my $p = port(30 + $n++);
    my $pid = open(my $out, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>', "$dir/sim-test.err";
        exec $^X, "-I$root/t/lib", $sim_test, $p, $end eq 'die' ? 'die'
                                                                 : 'sleep'
            or POSIX::_exit(127);
    }
    my $simpid = <$out>;
    chomp($simpid //= 0);
    # (the one that dies may already have stopped it: it answered /health)
    ok($simpid && ($end eq 'die' || running($simpid)),
       "$end: the test's vllm-sim runs") or diag(`cat $dir/sim-test.err`);
    kill $end, $pid unless $end eq 'die';
    waitpid $pid, 0;
    close $out;
    ok(Llmd::Util::wait_until(5, sub { !$simpid || !running($simpid) }),
       $end eq 'die' ? 'a test that dies: its vllm-sim exits'
                     : "SIG$end of the test: its vllm-sim exits");
    ok(Llmd::Util::wait_until(5, sub { !Llmd::Ports::port_in_use($p) }),
       "$end: port $p is free again");
}

# ---- ports in use ------------------------------------------------------------
my $taken = port(40);
my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $taken,
                               Listen => 8, ReuseAddr => 1)
    or die "listen $taken: $!";
my $err = eval { Llmd::Ports::assert_free(port(41), $taken); 1 } ? '' : $@;
like($err, qr/port\(s\) 127\.0\.0\.1:$taken already in use/,
     'assert_free names the port in use');
unlike($err, qr/:${\ port(41)}\b/, 'and only that one');
$err = '';
my $simpid = eval {
    require Llmd::Proc;
    Llmd::Proc::sim(args => [ '--port', $taken, '--quiet' ],
                    ports => [ $taken ], health => [ "127.0.0.1:$taken" ]);
} or $err = $@;
ok(!$simpid && $err =~ /already in use/,
   'a simulator is not started on a port in use (not tested against the '
   . 'leftover)') or diag($err);

# nginx of a Test::Nginx file: refused while its port is taken, stopped on
# SIGTERM and SIGINT
my $ngx_test = "$dir/900-ngx.t";
spew($ngx_test, <<'EOF');
use Test::Nginx::Socket 'no_plan';
use Llmd::Util;
run_tests();
__DATA__

=== TEST 1: a block that waits
--- init
$| = 1;
print "nginx " . Llmd::Util::nginx_master_pid() . "\n";
sleep 60;
--- request
GET /
--- error_code: 404
EOF
my $servroot = "$dir/servroot";
my %env = (TEST_NGINX_SERVROOT => $servroot, TEST_NGINX_PORT_BASE => 0,
           TEST_NGINX_SERVER_PORT => $taken);
my ($pid, $out) = start_child($ngx_test, %env);
my $tap = do { local $/; <$out> } // '';
waitpid $pid, 0;
like($tap, qr/^not ok .*nginx starts/m,
     'a Test::Nginx block fails when its port is taken');
like(`cat $ngx_test.err`, qr/port $taken is already in use/,
     'with a message naming the port');
close $ls;

for my $sig (qw(TERM INT)) {
    $env{TEST_NGINX_SERVER_PORT} = port(42);
    ($pid, $out) = start_child($ngx_test, %env);
    my $line = '';
    Llmd::Util::wait_until(15, sub {
        my $l = <$out>;
        $line = $l if defined $l && $l =~ /^nginx \d+/;
        return $line || !defined $l;
    });
    my ($ngx) = $line =~ /^nginx (\d+)/;
    ok($ngx && running($ngx), "SIG$sig: the test's nginx runs")
        or diag(`cat $ngx_test.err`);
    kill $sig, $pid;
    waitpid $pid, 0;
    close $out;
    ok(Llmd::Util::wait_until(10, sub { !$ngx || !running($ngx) }),
       "SIG$sig of a Test::Nginx file: its nginx exits");
}

# ---- one port block and server root per file ---------------------------------
my %by_number;
for my $t (glob 't/*.t') {
    my ($num) = File::Basename::basename($t) =~ /^(\d+)-/ or next;
    push @{ $by_number{$num} }, $t;
}
my @shared = grep { @{ $by_number{$_} } > 1 } sort keys %by_number;
ok(!@shared, 'every numbered test file has a number (a port block) of its '
   . 'own') or diag(join "\n", map { "@{ $by_number{$_} }" } @shared);

my @fixed;
# (Llmd::Ports itself holds the default base)
for my $t (glob('t/*.t'), grep { !/Ports\.pm$/ } glob('t/lib/Llmd/*.pm')) {
    open my $fh, '<', $t or die "$t: $!";
    while (my $l = <$fh>) {
        next if $l =~ /^\s*#/;
        push @fixed, "$t:$.: $l" if $l =~ /(?<![\d.\/])(?:1[0-9]|[2-5][0-9])\d{3}(?![\d.])/
                                  && $l =~ /port|Port|PORT|listen|:\d{5}\b/;
    }
}
ok(!@fixed, 'no test names a fixed port (Llmd::Ports::port gives the '
   . "file's own)") or diag(join '', @fixed);

done_testing();
