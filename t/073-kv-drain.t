# build/bin/llmd-bench-kv-drain (bench/kv-drain.c): the scheduling
# benchmark's subscriber for experiments without llmd_kv_events
# (bench/scheduling.sh, KV_DRAIN).  It must receive every KV-event message
# the pods publish and count them (messages, frames, bytes) on SIGUSR1 and
# at exit; refuse what it cannot do by name (an endpoint off loopback, a
# bound port, a bad MAX_SECONDS); and never outlive the benchmark (SIGTERM,
# its deadline, its parent's exit).  Then simulated pods publishing into it.
# Ports: +30 the drain, +31 a second drain, +40..+41 vllm-sim.
use strict;
use warnings;
use Test::More;
use POSIX ();
use Time::HiRes qw(time);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use ZMQ::FFI;
use ZMQ::FFI::Constants qw(ZMQ_XPUB ZMQ_LINGER);
use lib 't/lib';
use Llmd::Ports qw(port assert_free);
use Llmd::Proc;
use Llmd::Util;

my $top = abs_path(dirname(__FILE__) . '/..');
chdir $top or die "chdir $top: $!";
my $drain = "$top/build/bin/llmd-bench-kv-drain";
my $sim = "$top/build/bin/vllm-sim";
# built by `make` (tools): a missing binary fails, it is not skipped
if (!ok(-x $drain, "$drain is built (make)")) {
    done_testing();
    exit 1;
}

my $tmp = tempdir(CLEANUP => 1);
my ($PORT, $PORT2, $SIMPORT) = (port(30), port(31), port(40));
assert_free($PORT, $PORT2, $SIMPORT, $SIMPORT + 1);
my $ep = "tcp://127.0.0.1:$PORT";

sub run_drain {
    my (@args) = @_;
    my $out = `$drain @args 2>&1`;
    return ($? >> 8, $out);
}

sub slurp {
    my ($path) = @_;
    open(my $f, '<', $path) or return '';
    local $/;
    my $s = <$f>;
    close $f;
    return $s // '';
}

# the last "messages M frames F bytes B" line the drain wrote, as a hash
sub counts {
    my ($path) = @_;
    my @l = grep { /^messages / } split /\n/, slurp($path);
    return undef unless @l;
    my %c = $l[-1] =~ /(\w+) (\d+)/g;
    return \%c;
}

# asks a running drain for its counts until $want->(counts) holds
sub poll_counts {
    my ($pid, $out, $secs, $want) = @_;
    my $c;
    Llmd::Util::wait_until($secs, sub {
        kill 'USR1', $pid;
        Time::HiRes::sleep(0.02);
        $c = counts($out);
        return $c && $want->($c);
    });
    return $c;
}

# --- refusals -------------------------------------------------------------
my ($rc, $out) = run_drain();
is($rc, 2, 'no endpoint: exit 2');
like($out, qr/usage: .*ENDPOINT \[MAX_SECONDS\]/, 'no endpoint: the usage');
($rc, $out) = run_drain("tcp://0.0.0.0:$PORT");
is($rc, 2, 'an endpoint off loopback: exit 2');
like($out, qr/endpoint "tcp:\/\/0\.0\.0\.0:$PORT" is not tcp:\/\/127/,
     'an endpoint off loopback: named');
for my $bad ('x', '0', '-3', '5s', 'inf', 'nan') {
    ($rc, $out) = run_drain($ep, "'$bad'");
    is($rc, 2, "MAX_SECONDS '$bad': exit 2");
    like($out, qr/MAX_SECONDS "\Q$bad\E" is not a positive finite number/,
         "MAX_SECONDS '$bad': named");
}

# --- every message counted ------------------------------------------------
my $out1 = "$tmp/drain1.out";
my $pid = Llmd::Proc::spawn([ $drain, $ep, 60 ], stdout => $out1,
                            stderr => "$tmp/drain1.err");
ok(Llmd::Util::wait_until(10, sub {
    Llmd::Ports::port_in_use($PORT) }), 'the drain binds its port');

# a second drain on the same port: refused by name, exit 1
($rc, $out) = run_drain($ep, 5);
is($rc, 1, 'the port already bound: exit 1');
like($out, qr/bind \Q$ep\E: Address already in use/, 'the port: named');

# an XPUB sees the drain's subscription, so nothing sent after it is lost
my $ctx = ZMQ::FFI->new;
my $pub = $ctx->socket(ZMQ_XPUB);
$pub->set(ZMQ_LINGER, 'int', 1000);
$pub->connect($ep);
ok(Llmd::Util::wait_until(10, sub {
    return 0 unless $pub->has_pollin;
    my $s = $pub->recv;
    return substr($s, 0, 1) eq "\x01";
}), 'the drain subscribes to every topic');
my ($n, $bytes) = (200, 0);
for my $i (1 .. $n) {
    # vLLM's three frames: topic, 8-byte sequence, a payload
    my @m = ("kv\@127.0.0.1:8000\@m", pack('Q>', $i), 'x' x (10 + $i % 50));
    $bytes += length($_) for @m;
    $pub->send_multipart(\@m);
}
my $c = poll_counts($pid, $out1, 10, sub { $_[0]{messages} >= $n });
is($c && $c->{messages}, $n, "SIGUSR1: all $n messages counted");
is($c && $c->{frames}, 3 * $n, 'SIGUSR1: three frames each');
is($c && $c->{bytes}, $bytes, 'SIGUSR1: every byte');
ok(Llmd::Proc::alive($pid), 'SIGUSR1 does not stop it');
$pub->close;

my $st = Llmd::Proc::stop($pid, 5);
is($st, 0, 'SIGTERM: exit 0');
$c = counts($out1);
is($c && $c->{messages}, $n, 'at exit: the final count');
is(slurp("$tmp/drain1.err"), '', 'nothing on stderr');

# --- it never outlives the benchmark -------------------------------------
# its deadline
my $t0 = time;
$pid = Llmd::Proc::spawn([ $drain, $ep, 0.5 ], stdout => "$tmp/drain2.out");
my $st2 = Llmd::Proc::wait_exit($pid, 10);
is($st2, 0, 'MAX_SECONDS 0.5: exits by itself, 0');
cmp_ok(time - $t0, '>=', 0.5, 'MAX_SECONDS 0.5: not before');
like(slurp("$tmp/drain2.out"), qr/^messages 0 frames 0 bytes 0$/m,
     'MAX_SECONDS: its counts');

# its parent's exit: a process that starts it, waits until it is bound,
# and exits (the drain is then reparented, not our child: watched by pid;
# a zombie waiting for its new parent to reap it counts as gone)
my $pidfile = "$tmp/drain3.pid";
my $parent = Llmd::Proc::spawn([ 'true' ], code => sub {
    my $p = fork() // POSIX::_exit(1);
    if ($p == 0) {
        open(STDOUT, '>', '/dev/null');
        exec { $drain } $drain, $ep, 60;
        POSIX::_exit(127);
    }
    open(my $f, '>', $pidfile) or POSIX::_exit(1);
    print $f "$p\n";
    close $f;
    POSIX::_exit(Llmd::Util::wait_until(10, sub {
        Llmd::Ports::port_in_use($PORT) }) ? 0 : 1);
});
is(Llmd::Proc::wait_exit($parent, 20), 0,
   'its parent saw it bound, then exited');
my $orphan = slurp($pidfile);
chomp $orphan;
like($orphan, qr/^\d+$/, 'the orphan\'s pid');
sub running {
    my ($p) = @_;
    my $stat = slurp("/proc/$p/stat");
    return $stat ne '' && $stat !~ /^\d+ \(.*\) Z /;
}
ok(Llmd::Util::wait_until(10, sub { !running($orphan) }),
   'its parent gone: the drain exits');
kill 'KILL', $orphan if $orphan =~ /^\d+$/ && running($orphan);
ok(Llmd::Util::wait_until(10, sub { !Llmd::Ports::port_in_use($PORT) }),
   'and its port is free');

# --- simulated pods publishing into it ----------------------------------
SKIP: {
    skip "$sim not built", 4 unless -x $sim;
    my $out4 = "$tmp/drain4.out";
    $pid = Llmd::Proc::spawn([ $drain, $ep, 60 ], stdout => $out4);
    ok(Llmd::Util::wait_until(10, sub { Llmd::Ports::port_in_use($PORT) }),
       'the drain is bound before the pods');
    my $simpid = Llmd::Proc::sim(bin => $sim,
        args => [ '--pods', 2, '--port', $SIMPORT, '--model', 'sim/model',
                  '--time-scale', 10, '--block-size', 16,
                  '--kv-events', $ep, '--quiet' ],
        ports => [ $SIMPORT, $SIMPORT + 1 ],
        health => [ map { "127.0.0.1:" . ($SIMPORT + $_) } 0 .. 1 ]);
    # a prompt of several blocks on each pod: each stores blocks, and the
    # pod publishes them once its PUB has connected (retried until then)
    my $prompt = join(' ', map { "word$_" } 1 .. 200);
    my $sent = 0;
    $c = undef;
    Llmd::Util::wait_until(20, sub {
        for my $p (0 .. 1) {
            Llmd::Util::http_request(method => 'POST', addr => '127.0.0.1',
                port => $SIMPORT + $p, path => '/v1/completions',
                body => qq({"model":"sim/model","prompt":"$prompt $sent",)
                        . qq("max_tokens":2}), timeout => 5);
        }
        $sent++;
        $c = poll_counts($pid, $out4, 0.5, sub { $_[0]{messages} >= 2 });
        return $c && $c->{messages} >= 2;
    });
    cmp_ok($c ? $c->{messages} : 0, '>=', 2,
           'the pods\' KV events reach the drain');
    is($c && $c->{frames}, 3 * ($c ? $c->{messages} : 0),
       'three frames per message, as vLLM sends them');
    Llmd::Proc::stop($simpid, 5);
    is(Llmd::Proc::stop($pid, 5), 0, 'the drain stops with SIGTERM');
}

done_testing();
