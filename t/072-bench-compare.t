# bench/guide-compare and bench/seed-compare (docs/benchmark.md) on made-up
# runs and made-up reports whose figures are known: the guide's table is
# computed the way inference-perf computes its whole-run summary (successes
# over first send to last end, failures' ends included; medians; gen speed =
# 1 / mean TPOT), the guide's own figures are read from its tables (also the
# commented-out one) and its workload from its YAML; seed-compare judges a
# second run and the two runs' agreement, and counts requests per pod;
# bench/lib/picks.py --ttft counts what makes a run's TTFT p90,
# --exposure what the first requests cost the siblings behind them, --span
# what sets output tok/s; bench/lib/pairs.py compares two profiles over
# several runs (counts, means, bootstrap intervals, the sign test).  No
# processes besides the scripts, no ports; well under a second.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use File::Temp qw(tempdir);
use File::Path qw(make_path);
use Cwd qw(abs_path);
use File::Basename qw(dirname);

my $top = abs_path(dirname(__FILE__) . '/..');
chdir $top or die "chdir $top: $!";
plan skip_all => "no /usr/bin/python3" unless -x '/usr/bin/python3';

my $tmp = tempdir(CLEANUP => 1);
my $json = JSON::PP->new->canonical;

sub spew {
    my ($path, $text) = @_;
    make_path(dirname($path));
    open(my $f, '>', $path) or die "$path: $!";
    print $f $text;
    close $f;
}

sub run_script {
    my (@args) = @_;
    my $out = `@args 2>&1`;
    return ($? >> 8, $out);
}

# --- the guide ------------------------------------------------------------
my $workload = <<'Y';
load:
  type: poisson
  stages:
    - rate: 15
      duration: 50
    - rate: 3
      duration: 20
data:
  type: shared_prefix
  shared_prefix:
    num_groups: 150
    num_prompts_per_group: 5
    system_prompt_len: 6000
    question_len: 1200
    output_len: 1000
Y

sub guide_run {
    my ($res, $exp, $reqs, $itl_p50) = @_;
    spew("$res/$exp/loadgen/per_request_lifecycle_metrics.jsonl",
         join('', map { $json->encode($_) . "\n" } @$reqs));
    spew("$res/$exp/loadgen/report.json", $json->encode({
        summary => { metrics => { latency => { inter_token_latency => {
            p50 => $itl_p50, mean => 0.03, min => 0, max => 2 } } } } }));
}

sub rq {
    my ($sent, $lat, $ttft, $tpot, $ok, $srv) = @_;
    return { sent => $sent, request_latency => $lat,
             time_to_first_token => $ok ? $ttft : undef,
             time_per_output_token => $ok ? $tpot : undef,
             input_tokens => 100, output_tokens => 1000,
             output_tokens_counted => 1000, ok => $ok ? JSON::PP::true
                                                      : JSON::PP::false,
             server => $srv };
}

my $res = "$tmp/guide-1";
spew("$res/workload.yaml", $workload);
# round robin: 3 successes and a timeout that ends last; span 0..100
guide_run($res, 'round-robin', [
    rq(0, 10, 1, 0.05, 1, '18501'), rq(1, 20, 3, 0.07, 1, '18502'),
    rq(2, 98, 0, 0, 0, '18501'), rq(3, 5, 2, 0.03, 1, '18502') ], 0.025);
# llmd: 4 successes, span 0..50
guide_run($res, 'default-current', [
    rq(0, 8, 0.5, 0.04, 1, '18501'), rq(1, 9, 0.25, 0.04, 1, '18502'),
    rq(2, 48, 0.75, 0.04, 1, '18501'), rq(3, 7, 1.0, 0.04, 1, '18501') ],
    0.04);

my $guide = <<'G';
# A guide

```yaml
        data:
          shared_prefix:
            num_groups: 150
            num_prompts_per_group: 5
            output_len: 1000
            question_len: 1200
            system_prompt_len: 6000
        load:
          stages:
          - concurrency_level: null
            duration: 50
            num_requests: null
            rate: 15.0
          - concurrency_level: null
            duration: 20
            num_requests: null
            rate: 3.0
          sweep: null
```

### Comparing LLM-d scheduling to a simple kubernetes service

| Metric                  | k8s       | llmd      | Δ (llmd - k8s)   | Δ% vs k8s  |
|:------------------------|:----------|:----------|:-----------------|:-----------|
| Requests/sec            | 0.0200    | 0.0400    | 0.02             | 100%       |
| Output tokens/sec       | 1,000.00  | 2,000.00  | 1000             | 100%       |
| Approx. gen speed (1/mean time_per_output_token) [tok/s/request] | 10.0 | 20.0 | 10 | 100% |
| Request latency (s)     | 20.0      | 10.0      | -10              | -50%       |
| TTFT (s)                | 4.0       | 1.0       | -3               | -75%       |
| Time/output token (ms)  | 100.0     | 50.0      | -50              | -50%       |
| Inter-token latency (ms)| 50.0      | 40.0      | -10              | -20%       |

<!--
#### More

| Metric                  | k8s       | llmd      | Δ (llmd - k8s)   | Δ% vs k8s   |
|:------------------------|:----------|:----------|:-----------------|:------------|
| TTFT mean (s)           | 4.0       | 2.0       | -2               | -50%        |
| Request latency max (s) | 100.0     | 50.0      | -50              | -50%        |
-->

## Cleanup

| Metric | k8s | llmd |
|---|---|---|
| Not a row | 1 | 2 |
G
spew("$tmp/guide.md", $guide);

my ($rc, $out) = run_script('bench/guide-compare', "$tmp/guide.md", $res);
is($rc, 0, 'guide-compare: exit 0') or diag $out;
# ours: k8s 3 successes / 100 s; llmd 4 / 50 s
like($out, qr/^\| Requests\/sec \| 0\.0200 \| 0\.0400 \| \+100\.0% \| 0\.0300 \| 0\.0800 \| \+166\.7% \| 1\.500 \| 2\.000 \|$/m,
     'requests/s: successes / (last end - first send), a failure\'s end '
     . 'included; the guide\'s figures and Δ% beside ours');
like($out, qr/^\| Output tokens\/sec \| 1,000\.00 \| 2,000\.00 \| \+100\.0% \| 30\.000 \| 80\.000 \|/m,
     'output tokens/s: tokens counted on the text, successes only');
like($out, qr/^\| Approx\. gen speed \S.* \| 10\.000 \| 20\.000 \| \+100\.0% \| 20\.000 \| 25\.000 \|/m,
     'gen speed: 1 / mean time per output token');
like($out, qr/^\| Request latency \(s\) \| 20\.000 \| 10\.000 \| -50\.0% \| 10\.000 \| 8\.500 \|/m,
     'request latency: the median of the successes');
like($out, qr/^\| TTFT \(s\) \| 4\.000 \| 1\.000 \| -75\.0% \| 2\.000 \| 0\.6250 \|/m,
     'TTFT: the median');
like($out, qr/^\| Time\/output token \(ms\) \| 100\.00 \| 50\.000 \| -50\.0% \| 50\.000 \| 40\.000 \|/m,
     'time per output token: the median, in the row\'s unit (ms)');
like($out, qr/^\| Inter-token latency \(ms\) \| 50\.000 \| 40\.000 \| -20\.0% \| 25\.000 \| 40\.000 \|/m,
     'inter-token latency: the run\'s median token gap, in ms');
like($out, qr/^\| TTFT mean \(s\) \| 4\.000 \| 2\.000 \| -50\.0% \| 2\.000 \| 0\.6250 \|/m,
     'the commented-out table is read too (TTFT mean)');
like($out, qr/^\| Request latency max \(s\) \| 100\.00 \| 50\.000 \| -50\.0% \| 20\.000 \| 48\.000 \|/m,
     'max over the successes (the timeout is not a success)');
unlike($out, qr/Not a row/, 'tables after the comparison section are not read');
like($out, qr/^\| k8s \(round-robin\) \| 4 \| 3 \| 100 \| 18501:2 18502:2 \|$/m,
     'requests, successes, span and requests per pod');
like($out, qr/Workload \(shared prefix parameters and stages\) as the guide's\./,
     'the run\'s workload is checked against the guide\'s');

spew("$res/workload.yaml", $workload =~ s/rate: 3$/rate: 4/mr);
($rc, $out) = run_script('bench/guide-compare', "$tmp/guide.md", $res);
like($out, qr/DIFFERS from the guide's in stages/,
     'another stage rate is reported');

($rc, $out) = run_script('bench/guide-compare', $res);
is($rc, 0, 'without the guide: exit 0');
like($out, qr/^\| Requests\/sec \| 0\.0300 \| 0\.0800 \| 0\.0500 \| \+166\.7% \|$/m,
     'without the guide: ours in the guide\'s shape');

($rc, $out) = run_script('bench/guide-compare', "$tmp/guide.md", "$tmp/none");
isnt($rc, 0, 'no run in the directory: an error');

# --- seed-compare: a second run, agreement, requests per pod --------------
my $report = <<'R';
# Report

## Summary across QPS

| Experiment | Output toks/s | Requests/s | Success Rate | TTFT p90 (s) | TTFT mean (s) | ITL mean (s) | ITL p50/ p90 (s) |
|---|---|---|---|---|---|---|---|
| default-scheduling | 1000.0 | 3.0 | 100.00% | 1.000 | 0.500 | 0.020 | 0.0000/0.040 |

## QPS = 3

| Experiment | Output toks/s | Requests/s | Success Rate | TTFT p90 (s) | TTFT mean (s) | ITL mean (s) | ITL p50/ p90 (s) |
|---|---|---|---|---|---|---|---|
| default-scheduling | 1000.0 | 3.0 | 100.00% | 1.000 | 0.500 | 0.020 | 0.0000/0.040 |
R
spew("$tmp/report.md", $report);

sub seed_run {
    my ($dir, $tok, $p90, $servers) = @_;
    my @st;
    for my $rate (9, 3) {
        push @st, { rate => $rate, inference_perf => {
            successes => { count => 10, throughput => {
                    output_tokens_per_sec => $tok },
                latency => {
                    time_to_first_token => { mean => 0.5, p90 => $p90 },
                    inter_token_latency => { mean => 0.02, p90 => 0.04 } } },
            failures => { count => 0 },
            load_summary => { send_duration => 3.0 } },
            metrics => { latency => { inter_token_latency => {
                mean => 0.04 } } } };
    }
    spew("$dir/default/loadgen/report.json", $json->encode({
        stages => \@st,
        summary => { inference_perf => { successes => { latency => {
            inter_token_latency => { median => 0 } } } } } }));
    spew("$dir/default/loadgen/per_request_lifecycle_metrics.jsonl",
         join('', map { $json->encode({ stage => $_->[0],
                                        server => $_->[1] }) . "\n" }
              @$servers));
}
seed_run("$tmp/quick-a", 1000, 1.0,
         [[0, '18501'], [0, '18502'], [1, '18501'], [1, '18501'],
          [1, '18501'], [1, '18502']]);
seed_run("$tmp/quick-b", 1050, 1.5,
         [[0, '18502'], [1, '18501'], [1, '18502']]);

($rc, $out) = run_script('bench/seed-compare', "$tmp/report.md",
                         "$tmp/quick-a", "$tmp/quick-b");
is($rc, 0, 'seed-compare with two runs: exit 0') or diag $out;
like($out, qr/^- default \(run 1\), output tok\/s within 15 %: 2 of 2 rows$/m,
     'run 1 judged');
like($out, qr/^- default \(run 2\), TTFT p90 within 2x \(0\.15 s under 1 s\): 2 of 2 rows$/m,
     'run 2 judged');
like($out, qr/^\| default \| 3 \| 1000\.0 \| 1050\.0 \| 5 % \| 1\.000 \| 1\.500 \| 40 % \|/m,
     'the two runs side by side, |a - b| / their mean');
like($out, qr/^- default, two runs within 10 % \(out_tok_s\): 2 of 2 rows$/m,
     'tokens/s: 5 % apart, agreement met');
like($out, qr/^- default, two runs within 10 % \(ttft_p90\): 0 of 2 rows \(missed: summary, 3\)$/m,
     'TTFT p90: 40 % apart, agreement missed');
like($out, qr/^\| 1 \| default \| 18501: 4 \/ 18502: 2 \| 0\.75 \(stage 1\) \|$/m,
     'requests per pod of run 1 and the largest share of one pod in a '
     . 'stage');
like($out, qr/^\| 2 \| default \| 18501: 1 \/ 18502: 2 \| 1\.00 \(stage 0\) \|$/m,
     'and of run 2');
($rc, $out) = run_script('bench/seed-compare', "$tmp/report.md",
                         "$tmp/quick-a", "$tmp/quick-b", '--check');
is($rc, 1, '--check: a missed target exits 1');

# --- bench/lib/picks.py --ttft ------------------------------------------------
# 100 requests: the first request of each of 10 groups computes its whole
# prompt (TTFT 1.00, 1.05, ... 1.45 s, the floor 1.00), 10 s apart, but
# group 1's is sent to pod a at 0.5 s while group 0's (sent at 0 s, first
# token at 1.0 s) is still computed there, and groups 9 and 8 (no siblings)
# start on pod b at 286.8 and 287.2 s, while 9's is computed (to 288.25 s).
# Of the 90 siblings (groups 0-7) 3 in stage 1, sent at 287, 288 and 289 s
# behind one, two and no first requests on pod b, wait 1.5 s, and so does
# one sent at 250 s, the others 0.1 s: 14 requests reach the floor, more
# than 10 %, so the p90 (nearest rank 90 of 100) is the 5th of those from
# below: 1.20 s. Two siblings (287 and 288 s) were sent to a pod computing a
# first request; of the two slow ones behind none, the one sent at 289 s
# still had the one sent at 288 s (first token at 289.5 s) in front: a
# first request's backlog; the one sent at 250 s had nothing.
{
    my @r;
    my %at = (1 => 0.5, 8 => 287.2, 9 => 286.8);
    for my $g (0 .. 9) {
        push @r, { id => $g, stage => 0, group => $g, ok => JSON::PP::true,
                   scheduled => $at{$g} // 10 * $g,
                   server => $g < 2 ? 'a' : 'b',
                   time_to_first_token => 1.0 + 0.05 * $g,
                   input_tokens => 1000, cached_tokens => 0 };
    }
    for my $i (0 .. 89) {
        push @r, { id => 10 + $i, stage => $i < 45 ? 0 : 1, group => $i % 8,
                   ok => JSON::PP::true, scheduled => 200 + $i,
                   server => 'b', input_tokens => 1000, cached_tokens => 900,
                   time_to_first_token => $i >= 87 || $i == 50 ? 1.5
                                                               : 0.1 };
    }
    spew("$tmp/sweep/precise/loadgen/per_request_lifecycle_metrics.jsonl",
         join('', map { $json->encode($_) . "\n" } @r));
}
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/picks.py', '--ttft',
                         "$tmp/sweep/precise");
is($rc, 0, 'picks.py --ttft: exit 0') or diag $out;
like($out, qr/^\| precise \| 1\.200 \| 1\.000 \| 10 \| 14 \| 10 \| 0 \/ 4 \| 2 \(1\) \/ 1 \/ 1 \| 2 of 10 \| 2 \|$/m,
     'picks.py --ttft: p90, floor, 10 %, requests at the floor (first '
     . 'requests, siblings per stage, siblings behind 0 (of them behind a '
     . 'first request\'s backlog) / 1 / 2+ first requests), first requests '
     . 'stacked on a pod, siblings sent to a pod computing a first request')
    or diag $out;

# --firsts on the same run: of the 10 first requests, 8 went to a pod with
# no uncached tokens in prefill while the other pod had none either (groups
# 0, 2-7 and 9: a tie); group 1's went to pod a computing group 0's (1,000
# tokens) while pod b computed nothing, group 8's to pod b computing group
# 9's and a slow sibling's 100 uncached tokens while pod a was idle: 2
# stacked, both while a pod computed none. Groups 0 and 1 have 12 siblings
# each, all on pod b, away from their first pod, each with 900 tokens
# cached.
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/picks.py', '--firsts',
                         "$tmp/sweep/precise");
is($rc, 0, 'picks.py --firsts: exit 0') or diag $out;
like($out, qr/^\| precise \| 10 \| 8 \(8\) \| 2 \(2\) \| 24 \(0\) \|$/m,
     'picks.py --firsts: first requests, to a pod with the fewest uncached '
     . 'tokens in prefill (tied), stacked (while a pod was idle), siblings '
     . 'off their group\'s pod (nothing cached)')
    or diag $out;

# --ties: a made-up run with its access log (2 pods, time scale 3: a scrape
# interval is 0.15 simulated s). First requests of groups 0 (0 s, pod 1,
# tied 2.000 / 2.000), 3 (0.3 s, pod 2, margin 1.0), 1 (2.0 s, pod 1, tied
# 1.500 / 1.500) and 2 (2.5 s, pod 1, 1.550 against 1.500, while pod 1
# computes group 1's and pod 2 nothing: stacked, 0.5 s after a scrape);
# siblings of groups 0 and 3 at home. Exposed siblings (other groups' sent
# during a first request's prefill) per pod: group 0's 0 / 2, group 3's 1 /
# 0, group 1's 1 / 2, group 2's 1 / 3: as placed 2, at random 5.0; the
# scrape-interval tie-break sees no recent request (1 + 1.5), the 3 s one
# 2 against 3 requests at group 1's (1 + 1); within 0.1 and among all pods
# group 2's sees 3 and 3 (mean 2); least 2. By the fewest groups homed: 0
# / 0 (mean 1), 1 / 0 (pod 2: 0), 1 / 1 (mean 1.5), 2 / 1 (pod 2: 3), 5.5.
# Two warm-up picks and a status request come first in the log.
{
    my @r = ([0.0, 0, '8001', 1.0, 0, '8001=2.000 8002=2.000'],
             [0.3, 3, '8002', 0.5, 0, '8002=1.900 8001=0.900'],
             [0.5, 0, '8001', 0.1, 1, '8001=3.000 8002=1.000'],
             [0.6, 3, '8002', 0.1, 1, '8002=3.000 8001=1.000'],
             [0.7, 3, '8002', 0.1, 1, '8002=3.000 8001=1.000'],
             [2.0, 1, '8001', 1.0, 0, '8001=1.500 8002=1.500'],
             [2.5, 2, '8001', 1.0, 0, '8001=1.550 8002=1.500'],
             [2.6, 0, '8001', 0.1, 1, '8001=3.000 8002=1.000'],
             [2.7, 3, '8002', 0.1, 1, '8002=3.000 8001=1.000'],
             [2.9, 3, '8002', 0.1, 1, '8002=3.000 8001=1.000'],
             [3.2, 3, '8002', 0.1, 1, '8002=3.000 8001=1.000']);
    my (@l, $log);
    my $i = 0;
    for my $x (@r) {
        push @l, { id => $i++, stage => 0, group => $x->[1],
                   ok => JSON::PP::true, scheduled => $x->[0],
                   sent => $x->[0], server => $x->[2],
                   time_to_first_token => $x->[3], input_tokens => 1000,
                   cached_tokens => $x->[4] ? 900 : 0 };
    }
    $log = qq{900.000 0.100 127.0.0.1:8002 127.0.0.1:8002 0/0 }
         . qq{"127.0.0.1:8002=2.000 127.0.0.1:8001=1.000" 9 0 0\n}
         . qq{900.100 0.100 127.0.0.1:8001 127.0.0.1:8001 0/0 }
         . qq{"127.0.0.1:8001=2.000 127.0.0.1:8002=1.000" 9 0 0\n}
         . qq{950.000 0.000 - - - "-" - - -\n};
    # ends in reverse order: the log is in order of ends, not starts
    for my $x (reverse @r) {
        my $start = 1000 + $x->[0] / 3;
        (my $sc = $x->[5]) =~ s/(\d+)=/127.0.0.1:$1=/g;
        $log .= sprintf(qq{%.3f 1.000 127.0.0.1:%s 127.0.0.1:%s %s/10 "%s" }
                        . qq{9 0 0\n}, $start + 1, $x->[2], $x->[2],
                        $x->[4] ? 9 : 0, $sc);
    }
    spew("$tmp/sweep-t/precise/loadgen/per_request_lifecycle_metrics.jsonl",
         join('', map { $json->encode($_) . "\n" } @l));
    spew("$tmp/sweep-t/precise/access.log", $log);
    spew("$tmp/sweep-t/README.md", "4 simulated pods. Time scale 3: the "
         . "pods run 3 times faster\n");
}
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/picks.py', '--ties',
                         "$tmp/sweep-t/precise");
is($rc, 0, 'picks.py --ties: exit 0') or diag $out;
like($out, qr/^\| precise \| 0 \| 4 \| 2 \(2 \/ 3\) \| 2 \/ 5\.0 \/ 3\.5 \/ 3\.0 \/ 4\.0 \/ 4\.0 \/ 2 \| 5\.5 \| 1 \(1, 1: 0\.050\) \|$/m,
     'picks.py --ties: first requests, ties (within 0.03 / 0.1), exposed '
     . 'siblings as placed / at random / by the recent-load tie-breaks / '
     . 'the 3 s key within 0.1 and over all pods / least; by the fewest '
     . 'groups homed; stacked (after a '
     . 'scrape, while a pod computed none: margin)')
    or diag $out;

# --span: output tok/s is every output token over first send to last end.
# Five requests of 1,000 tokens on pods a and b and a failed one (ignored,
# though it ends last): the first scheduled at 1 s (0.999); the last end
# is b's request sent at 3 s (TTFT 1, end 33 s): span 32 s, 156.2 tok/s;
# its decode 4-33 s (29 s) shares pod b with one sent at 10 s that decodes
# 15-22 s (from its first token, not its send), so b's mean batch over it
# is (29 + 7) / 29 = 1.2; pod a's last end 22 s.
{
    my @r = ([1, 1.0, 10, 'a', 1], [2, 0.5, 20, 'a', 1], [5, 1.0, 11, 'a', 1],
             [3, 1.0, 30, 'b', 1], [10, 5.0, 12, 'b', 1],
             [4, 1.0, 96, 'a', 0]);
    my $i = 0;
    spew("$tmp/sweep-s/precise/loadgen/per_request_lifecycle_metrics.jsonl",
         join('', map { $json->encode({
             id => $i++, stage => 0, group => 0,
             scheduled => $_->[0] - 0.001, sent => $_->[0],
             time_to_first_token => $_->[1], request_latency => $_->[2],
             time_per_output_token => 0.029, output_tokens => 1000,
             server => $_->[3],
             ok => $_->[4] ? JSON::PP::true : JSON::PP::false }) . "\n" }
             @r));
}
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/picks.py', '--span',
                         "$tmp/sweep-s/precise");
is($rc, 0, 'picks.py --span: exit 0') or diag $out;
like($out, qr/^\| precise \| 5000 \| 32\.00 \| 156\.2 \| 2\.00 \| 1\.000 \| 29\.00 \| 0\.0290 \| b \| 1\.2 \| b 32\.00 \/ a 21\.00 \|$/m,
     'picks.py --span: output tokens, span, output tok/s; the last '
     . 'request\'s send, TTFT, decode, time per token, pod and its pod\'s '
     . 'mean decode batch; each pod\'s last end')
    or diag $out;

# --exposure: two pods, the floor 1.0 s (group 0's first request). Stage 0:
# group 0's first on a at 0 s (TTFT 1.0), group 1's on b at 0.2 s (2.0);
# siblings at 0.5 s on a (group 1, 0.6 s), 0.7 s on b (group 0, 1.6 s: at
# the floor), 1.5 s on b (group 0, 0.2 s) and 3 s on a (after both). Behind
# group 0's: the one at 0.5 s (0.7 s is its own group's, which follows it
# anywhere); behind group 1's: 0.7 and 1.5 s on b (0.5 s is its own): 3
# exposed, blind 1 / 2 + 2 / 2 = 1.5, least possible 0 + 0, at the floor 1.
# Stage 1: group 2's first on a at 10 s (1.5 s); siblings at 10.5 s on a
# (group 0, 1.2 s), 10.8 s on a (its own group) and 11 s on b (group 1):
# exposed 1, blind 1.0, least 1, at the floor 1. A run whose first
# requests all hit the cache: exit 1.
{
    my @r = ([0, 0, 0, 'a', 1.0, 0], [0, 1, 0.2, 'b', 2.0, 0],
             [0, 1, 0.5, 'a', 0.6, 500], [0, 0, 0.7, 'b', 1.6, 500],
             [0, 0, 1.5, 'b', 0.2, 500], [0, 1, 3.0, 'a', 0.1, 500],
             [1, 2, 10.0, 'a', 1.5, 0], [1, 0, 10.5, 'a', 1.2, 500],
             [1, 2, 10.8, 'a', 1.3, 500], [1, 1, 11.0, 'b', 0.1, 500]);
    my $i = 0;
    my $rows = sub {
        my ($cached) = @_;
        join('', map { $json->encode({
            id => $i++, stage => $_->[0], group => $_->[1],
            scheduled => $_->[2], sent => $_->[2] + 0.001,
            server => $_->[3], time_to_first_token => $_->[4],
            cached_tokens => $cached // $_->[5],
            ok => JSON::PP::true }) . "\n" } @r);
    };
    spew("$tmp/sweep-e/precise/loadgen/per_request_lifecycle_metrics.jsonl",
         $rows->());
    spew("$tmp/sweep-e/default/loadgen/per_request_lifecycle_metrics.jsonl",
         $rows->(64));
}
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/picks.py',
                         '--exposure', "$tmp/sweep-e/precise");
is($rc, 0, 'picks.py --exposure: exit 0') or diag $out;
like($out, qr/^\| precise \| 0 \| 2 \| 1\.500 \| 3 \| 1\.5 \| 0 \| 1 \|\n\| precise \| 1 \| 1 \| 1\.500 \| 1 \| 1\.0 \| 1 \| 1 \|$/m,
     'picks.py --exposure: per stage, first requests, their mean TTFT, '
     . 'siblings exposed as placed, for a blind pick and at least, at the '
     . 'floor')
    or diag $out;
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/picks.py',
                         '--exposure', "$tmp/sweep-e/default");
is($rc, 1, 'picks.py --exposure: no cold first request: exit 1')
    or diag $out;
like($out, qr/no group's first request found nothing cached/,
     'picks.py --exposure: says so') or diag $out;
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/picks.py',
                         '--exposure', "$tmp/sweep-e/precise",
                         "$tmp/sweep-e/none");
is($rc, 2, 'picks.py --exposure: a directory without per-request data: '
   . 'exit 2') or diag $out;
like($out, qr{^picks\.py: \Q$tmp\E/sweep-e/none: .*per_request_lifecycle_metrics\.jsonl}m,
     'picks.py: names the directory and the file it could not read')
    or diag $out;
like($out, qr/^\| precise \| 1 \| 1 \| 1\.500 \|/m,
     'picks.py: the readable experiment still reported') or diag $out;
spew("$tmp/sweep-e/torn/loadgen/per_request_lifecycle_metrics.jsonl",
     qq({"server": "a", "sent": 0\n));
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/picks.py',
                         "$tmp/sweep-e/torn");
is($rc, 2, 'picks.py: a per-request line that is not JSON: exit 2')
    or diag $out;
like($out, qr{^picks\.py: \Q$tmp\E/sweep-e/torn: }m,
     'picks.py: names the directory whose data is torn') or diag $out;
unlike($out, qr/Traceback/, 'picks.py: no traceback for torn data')
    or diag $out;

# --- bench/lib/pairs.py: precise against default over several runs --------
# Each made-up run has both experiments: report.json with output tok/s and
# TTFT p90, and 20 requests: two groups' first requests on pod a (TTFT 1.0
# and 1.2 s: the floor 1.0) and 18 siblings on pod b, K of them at 1.5 s
# (at or above the floor: 2 + K). Runs (precise / default):
#   r1: output 1010 / 1000, p90 0.50 / 0.60, K 1 / 2: both halves met
#   r2:         990 / 1000,     0.70 / 0.60,   3 / 1: missed
#   r3:        1000 / 1005,     0.55 / 0.55,   0 / 0: p90 tied (met), output missed
#   r4:        1020 / 1000,     0.40 / 0.60,   0 / 3: met
#   r5: precise only: skipped, named on stderr
# p90 <= in 3 of 4, output >= in 2, both in 2; p90 difference mean
# (-0.1 + 0.1 + 0 - 0.2) / 4 = -0.050 s; at the floor (-1 + 2 + 0 - 3) / 4
# = -0.5; output ratio (1.01 + 0.99 + 1000 / 1005 + 1.02) / 4 = 1.0038;
# sign test: lower in 2, higher in 1 (the tie left out): p = 2 x 4 / 8,
# capped at 1. Only r1 has resources.json (the simulator's CPU wait).
sub pairs_exp {
    my ($dir, $out, $p90, $k) = @_;
    spew("$dir/loadgen/report.json", $json->encode({ summary => { metrics => {
        throughput => { output_tokens_per_sec => $out },
        latency => { time_to_first_token => { p90 => $p90 } } } } }));
    my @r = map { { id => $_, stage => 0, group => $_, ok => JSON::PP::true,
                    scheduled => $_, server => 'a',
                    time_to_first_token => 1.0 + 0.2 * $_ } } (0, 1);
    push @r, map { { id => 2 + $_, stage => 0, group => $_ % 2,
                     ok => JSON::PP::true, scheduled => 10 + $_,
                     server => 'b',
                     time_to_first_token => $_ < $k ? 1.5 : 0.1 } } 0 .. 17;
    spew("$dir/loadgen/per_request_lifecycle_metrics.jsonl",
         join('', map { $json->encode($_) . "\n" } @r));
}
my %pairs_runs = (r1 => [1010, 0.50, 1, 1000, 0.60, 2],
                  r2 => [990, 0.70, 3, 1000, 0.60, 1],
                  r3 => [1000, 0.55, 0, 1005, 0.55, 0],
                  r4 => [1020, 0.40, 0, 1000, 0.60, 3]);
for my $r (sort keys %pairs_runs) {
    my $v = $pairs_runs{$r};
    pairs_exp("$tmp/pairs/$r/precise", @$v[0 .. 2]);
    pairs_exp("$tmp/pairs/$r/default", @$v[3 .. 5]);
}
pairs_exp("$tmp/pairs/r5/precise", 1000, 0.5, 0);
# r1 has resources.json: the simulator waited 9.5 s for a CPU in precise,
# 6.0 s in default
spew("$tmp/pairs/r1/precise/resources.json", '{"sim_runq_wait_seconds": 9.5}');
spew("$tmp/pairs/r1/default/resources.json", '{"sim_runq_wait_seconds": 6.0}');
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/pairs.py',
                         map { "$tmp/pairs/r$_" } 1 .. 5);
is($rc, 0, 'pairs.py: exit 0') or diag $out;
like($out, qr{^\| r1 \| 1010\.0 / 1000\.0 \| 1\.010 \| 0\.500 / 0\.600 \| -0\.100 \| 3 / 4 \(2\) \| 9\.5 / 6\.0 \| met \|$}m,
     'pairs.py: a run where both halves are met: outputs, ratio, p90s, '
     . 'difference, requests at or above the floor, simulator\'s CPU wait')
    or diag $out;
like($out, qr{^\| r3 \| 1000\.0 / 1005\.0 \| 0\.995 \| 0\.550 / 0\.550 \| \+0\.000 \| 2 / 2 \(2\) \| - / - \| missed \|$}m,
     'pairs.py: a tied p90 with the lower output misses; no '
     . 'resources.json: no CPU wait') or diag $out;
like($out, qr{^simulator's CPU wait, precise - default: mean \+3\.5 s, 95 % interval \+3\.5 \.\. \+3\.5 s \(1 runs\); precise's longer in 1$}m,
     'pairs.py: CPU wait over the runs that have it') or diag $out;
like($out, qr{r5: no default}, 'pairs.py: a run without B is named')
    or diag $out;
unlike($out, qr{^\| r5 }m, 'pairs.py: and left out') or diag $out;
like($out, qr{^runs: 4$}m, 'pairs.py: four runs counted') or diag $out;
like($out, qr{^precise's TTFT p90 <= default's: 3 of 4; output >= : 2 of 4; both: 2 of 4$}m,
     'pairs.py: the target judged per run') or diag $out;
like($out, qr{^requests at or above the floor, precise - default: mean -0\.5,}m,
     'pairs.py: mean difference of requests at the floor') or diag $out;
like($out, qr{^output tok/s, precise / default: mean 1\.0038,}m,
     'pairs.py: mean output ratio') or diag $out;
like($out, qr{^sign test, TTFT p90: precise lower in 2, higher in 1: p = 1\.000$}m,
     'pairs.py: the sign test leaves ties out') or diag $out;
if ($out =~ /^TTFT p90, precise - default: mean (\S+) s, 95 % interval (\S+) \.\. (\S+) s$/m) {
    my ($m, $lo, $hi) = ($1, $2, $3);
    is($m, '-0.050', 'pairs.py: mean p90 difference');
    ok($lo <= $m && $m <= $hi && $lo >= -0.2 && $hi <= 0.1,
       "pairs.py: the bootstrap interval ($lo .. $hi) holds the mean and "
       . 'lies within the runs\' differences');
} else {
    fail('pairs.py: the p90 difference line') for 1 .. 2;
    diag $out;
}
# Six runs all won by precise: p = 2 / 2^6; no run at all: exit 1.
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/pairs.py',
                         map { "$tmp/pairs/$_" } qw(r1 r1 r1 r4 r4 r4));
like($out, qr{^sign test, TTFT p90: precise lower in 6, higher in 0: p = 0\.031$}m,
     'pairs.py: six wins of six: p = 0.031') or diag $out;
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/pairs.py',
                         "$tmp/pairs/r5");
is($rc, 1, 'pairs.py: no run with both experiments: exit 1') or diag $out;
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/pairs.py',
                         '--a', 'default', '--b', 'precise',
                         map { "$tmp/pairs/r$_" } 1 .. 4);
like($out, qr{^default's TTFT p90 <= precise's: 2 of 4; output >= : 2 of 4; both: 2 of 4$}m,
     'pairs.py --a/--b: the roles swapped') or diag $out;

# bench/sweep-pairs.sh with run directories: only the summary, written to
# bench/results/sweep-pairs-<date>.md (removed after); PAIRS must be a
# number of runs.
($rc, $out) = run_script('bench/sweep-pairs.sh',
                         map { "$tmp/pairs/r$_" } 1 .. 4);
is($rc, 0, 'sweep-pairs.sh RUN_DIR...: exit 0') or diag $out;
like($out, qr{^precise's TTFT p90 <= default's: 3 of 4; output >= : 2 of 4; both: 2 of 4$}m,
     'sweep-pairs.sh: pairs.py\'s summary of the runs given') or diag $out;
if ($out =~ /^summary: (\S+)$/m) {
    my $md = $1;
    ok(-f $md && `cat $md` =~ /^- \Q$tmp\E\/pairs\/r4$/m,
       'sweep-pairs.sh: the summary file names the runs');
    unlink $md;
} else {
    fail('sweep-pairs.sh: the summary file');
}
($rc, $out) = run_script('env', 'PAIRS=two', 'bench/sweep-pairs.sh');
is($rc, 2, 'sweep-pairs.sh PAIRS=two: exit 2') or diag $out;
like($out, qr{PAIRS=two: a number of runs}, 'sweep-pairs.sh: says why')
    or diag $out;

# A run whose precise has report.json but no per-request data is skipped
# like a run without it; sweep-pairs.sh over runs of which none has both
# fails (exit 1) and leaves no summary file behind.
spew("$tmp/pairs/r6/precise/loadgen/report.json",
     `cat $tmp/pairs/r1/precise/loadgen/report.json`);
pairs_exp("$tmp/pairs/r6/default", 1000, 0.5, 0);
($rc, $out) = run_script('/usr/bin/python3', 'bench/lib/pairs.py',
                         "$tmp/pairs/r1", "$tmp/pairs/r6");
like($out, qr{r6: no precise}, 'pairs.py: no per-request data: named')
    or diag $out;
like($out, qr{^runs: 1$}m, 'pairs.py: and left out') or diag $out;
my @before = glob('bench/results/sweep-pairs-*.md');
($rc, $out) = run_script('bench/sweep-pairs.sh', "$tmp/pairs/r5",
                         "$tmp/pairs/r6");
is($rc, 1, 'sweep-pairs.sh: no run with both experiments: exit 1')
    or diag $out;
is(scalar(my @after = glob('bench/results/sweep-pairs-*.md')),
   scalar(@before), 'sweep-pairs.sh: no summary file left on failure');

# LLMD_BENCH_TOKENS (bench/kv_bench_util.h): an id beyond 32 bits and a
# file without ids are refused by name before any benchmark runs.
SKIP: {
    skip 'build/bin/llmd-bench-kv not built', 4
        unless -x 'build/bin/llmd-bench-kv';
    spew("$tmp/ids-big", "1 2 4294967296 3\n");
    spew("$tmp/ids-none", "no ids here\n");
    ($rc, $out) = run_script("LLMD_BENCH_TOKENS=$tmp/ids-big",
                             'build/bin/llmd-bench-kv', '1');
    is($rc, 1, 'llmd-bench-kv: an id beyond 32 bits: exit 1') or diag $out;
    like($out, qr{token id 3 is not a 32-bit number},
         'llmd-bench-kv: names the id') or diag $out;
    ($rc, $out) = run_script("LLMD_BENCH_TOKENS=$tmp/ids-none",
                             'build/bin/llmd-bench-kv', '1');
    is($rc, 1, 'llmd-bench-kv: no ids: exit 1') or diag $out;
    like($out, qr{no token ids in}, 'llmd-bench-kv: says so') or diag $out;
}

done_testing();
