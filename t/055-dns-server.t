# The tests' DNS server (tools/dns-server.py through t/lib/Llmd/DNS.pm):
# A and AAAA answers from the zone, NXDOMAIN, empty answers, SERVFAIL, a
# slow name, TCP, a zone change seen by the very next query, a broken zone
# file ignored, and the server never outliving its test: gone after ->stop,
# after --max-seconds, when the test process is killed (SIGKILL or SIGTERM).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time);
use Llmd::DNS;
use Llmd::Util ();

my $NAME = 'pods.llmd.test.';

my $dns = Llmd::DNS->start(zone => {
    $NAME => { A => [ '127.0.0.2', '127.0.0.3' ],
               AAAA => [ '::1', 'fd00::2' ], ttl => 1 },
    'v4only.llmd.test.' => { A => [ '127.0.0.4' ], ttl => 5 },
    'empty.llmd.test.' => { A => [] },
    'broken.llmd.test.' => { A => [ '127.0.0.2' ], servfail => JSON::PP::true },
    'slow.llmd.test.' => { A => [ '127.0.0.5' ], delay_ms => 300 },
});
ok($dns->port > 0 && $dns->alive, 'the server runs on a free port');

my $r = $dns->query($NAME, 'A');
is($r->{rcode}, 'NOERROR', 'A: NOERROR');
is_deeply([ sort @{ $r->{answers} } ], [ '127.0.0.2', '127.0.0.3' ],
          'A: both addresses');
is_deeply($r->{ttls}, [ 1, 1 ], 'A: the zone\'s ttl');
is($r->{aa}, 1, 'authoritative answer');

$r = $dns->query('PODS.llmd.test', 'AAAA');
is_deeply([ sort @{ $r->{answers} } ], [ '::1', 'fd00::2' ],
          'AAAA, the name in another case and without the final dot');

$r = $dns->query('nope.llmd.test', 'A');
is($r->{rcode}, 'NXDOMAIN', 'unknown name: NXDOMAIN');

$r = $dns->query('empty.llmd.test', 'A');
ok($r->{rcode} eq 'NOERROR' && !@{ $r->{answers} }, 'A: []: NOERROR, empty');
$r = $dns->query('v4only.llmd.test', 'AAAA');
ok($r->{rcode} eq 'NOERROR' && !@{ $r->{answers} },
   'AAAA of a name with only A: NOERROR, empty');

$r = $dns->query('broken.llmd.test', 'A');
ok($r->{rcode} eq 'SERVFAIL' && !@{ $r->{answers} }, 'servfail: SERVFAIL');

my $t0 = time;
$r = $dns->query('slow.llmd.test', 'A', timeout => 3);
my $took = time - $t0;
is_deeply($r->{answers}, [ '127.0.0.5' ], 'delay_ms: answered');
cmp_ok($took, '>=', 0.29, 'delay_ms: answered after the delay');

$r = $dns->query($NAME, 'A', tcp => 1);
is_deeply([ sort @{ $r->{answers} } ], [ '127.0.0.2', '127.0.0.3' ],
          'the same answer over TCP');

# ---- zone changes: the next query sees them, however quick ---------------
my @seen;
for my $set ([ '127.0.0.2' ], [ '127.0.0.2', '127.0.0.4' ], [],
             [ '127.0.0.3', '127.0.0.4', '127.0.0.5' ]) {
    $dns->set_zone({ $NAME => { A => $set, ttl => 1 } });
    push @seen, [ sort @{ $dns->query($NAME, 'A')->{answers} } ];
}
is_deeply(\@seen, [ [ '127.0.0.2' ], [ '127.0.0.2', '127.0.0.4' ], [],
                    [ '127.0.0.3', '127.0.0.4', '127.0.0.5' ] ],
          'four zone changes in a row, each seen by the next query');
is($dns->query('v4only.llmd.test', 'A')->{rcode}, 'NXDOMAIN',
   'a name gone from the zone: NXDOMAIN');

# a half-written or broken zone file keeps the last good zone
open(my $fh, '>', $dns->zone_file) or die $dns->zone_file . ": $!";
print $fh '{"pods.llmd.test.": {"A": [';
close $fh;
utime(time + 5, time + 5, $dns->zone_file);
is_deeply([ sort @{ $dns->query($NAME, 'A')->{answers} } ],
          [ '127.0.0.3', '127.0.0.4', '127.0.0.5' ],
          'a broken zone file: the last zone answers');
$dns->set_zone({ $NAME => { A => [ '127.0.0.9' ] } });
is_deeply($dns->query($NAME, 'A')->{answers}, [ '127.0.0.9' ],
          'and the next good one replaces it');

# ---- the server never outlives its test ------------------------------------
sub running {
    my ($pid) = @_;
    open(my $st, '<', "/proc/$pid/stat") or return 0;
    my $line = <$st> // '';
    return $line =~ /\)\s+[^Z]\s/ ? 1 : 0;      # a zombie has exited
}

my ($port, $pid) = ($dns->port, $dns->pid);
$dns->stop;
ok(!running($pid), '->stop: the process is gone');
ok(!defined Llmd::DNS::query($port, $NAME, 'A', timeout => 0.5),
   '->stop: no answer on its port');

my $short = Llmd::DNS->start(zone => {}, max_seconds => 1);
$pid = $short->pid;
ok(Llmd::Util::wait_until(5, sub { !running($pid) }),
   '--max-seconds 1: the server exits by itself');
$short->stop;

# a test process that starts a server, then dies
for my $sig (qw(KILL TERM)) {
    my $child = open(my $out, '-|') // die "fork: $!";
    if ($child == 0) {
        my $d = Llmd::DNS->start(zone => {});
        $| = 1;
        print $d->pid, "\n";
        sleep 60;
        exit 0;
    }
    my $server = <$out>;
    chomp($server //= 0);
    ok($server && running($server), "$sig: the test's server runs");
    kill $sig, $child;
    waitpid $child, 0;
    close $out;
    ok(Llmd::Util::wait_until(5, sub { !running($server) }),
       "$sig of the test process: the server exits");
}

done_testing();
