# vllm-sim's prefill/decode disaggregation as llm-d runs it
# (docs/simulator.md "Prefill/decode disaggregation"): pods with a role, the
# prefill leg a prefill pod answers with kv_transfer_params, the decode
# pod's sidecar that sends it on x-prefiller-host-port, the KV pull
# (bytes / bandwidth, only the blocks the decode pod lacks) in the decode
# pod's TTFT, the pulled blocks in its KV events, its counters, and a
# prefiller that fails: its error to the client (llm-d) or, with
# --pd-fallback, a local prefill.
# Ports are this file's own (Llmd::Ports, offsets in its block):
#   A: 127.0.0.1 +30..+32, prefill, decode, decode (KV events +50..+52)
#   B: 127.0.0.1 +35..+36, prefill, decode, a slow KV link, --pd-fallback,
#      a 1 s prefill-leg timeout
#   C: 127.0.0.2-3 +40 (--hosts), prefill, decode, another model
# +38 is a listener of this test that never answers, +39 nothing.
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(time sleep);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use ZMQ::FFI;
use ZMQ::FFI::Constants qw(ZMQ_SUB);
use Data::MessagePack;
use lib 't/lib';
use Llmd::Util qw(wait_until);
use Llmd::Ports qw(port);
use Llmd::Proc;

my $top = abs_path(dirname(__FILE__) . '/..');
chdir $top or die "chdir $top: $!";
my $bin = $ENV{VLLM_SIM_BIN} // "$top/build/bin/vllm-sim";
plan skip_all => "$bin not built (make build/bin/vllm-sim)" unless -x $bin;

my $MODEL = 'sim/model';
my $KVB = 327680;                       # Llama-3.1-70B bf16, the default
my @common = ('--model', $MODEL, '--time-scale', 10, '--num-blocks', 1024,
              '--block-size', 16, '--max-model-len', 8192, '--quiet');
my ($A0, $A1, $A2) = (port(30), port(31), port(32));
my ($B0, $B1) = (port(35), port(36));
my ($SILENT, $NONE, $C) = (port(38), port(39), port(40));
my ($KV0, $KV1, $KV2) = (port(50), port(51), port(52));
Llmd::Ports::assert_free($A0, $A1, $A2, $B0, $B1, $SILENT, $NONE,
                         "127.0.0.2:$C", "127.0.0.3:$C", $KV0, $KV1, $KV2);

# every simulator dies with the test (Llmd::Proc)
sub start { Llmd::Proc::spawn([ @_ ]) }

start($bin, '--pods', 3, '--port', $A0, '--roles', 'prefill,decode,decode',
      '--kv-events', "tcp://*:${KV0}", @common);
# 1 MB per token over 8 Gbit/s: 1 ms (simulated) of transfer per token
start($bin, '--pods', 2, '--port', $B0, '--roles', 'prefill,decode',
      '--kv-bytes-per-token', 1e6, '--kv-transfer-gbps', 8, '--pd-fallback',
      '--pd-timeout-ms', 1000, @common);
start($bin, '--hosts', '127.0.0.2,127.0.0.3', '--port', $C,
      '--roles', 'prefill,decode', @common, '--model', 'sim/other');

my $silent = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
    LocalPort => $SILENT, Listen => 16, ReuseAddr => 1)
    or die "listen ${SILENT}: $!";

my $json = JSON::PP->new->canonical;
my $http = HTTP::Tiny->new(timeout => 10);

sub addr { my ($pod) = @_; $pod =~ /:/ ? $pod : "127.0.0.1:$pod" }

sub post {
    my ($pod, $path, $body, $prefiller) = @_;
    return $http->request('POST', 'http://' . addr($pod) . $path, {
        headers => { 'content-type' => 'application/json',
                     defined $prefiller
                         ? ('x-prefiller-host-port' => $prefiller) : () },
        content => $json->encode($body) });
}

sub complete {
    my ($pod, $prefiller, %o) = @_;
    my $r = post($pod, '/v1/completions',
                 { model => $MODEL, ignore_eos => JSON::PP::true,
                   max_tokens => 4, %o }, $prefiller);
    return ($r, $r->{success} ? $json->decode($r->{content}) : undef);
}

sub state {
    my ($pod) = @_;
    return eval { $json->decode($http->get('http://' . addr($pod)
                                           . '/sim/state')->{content}) }
        || {};
}

sub metrics {
    my ($pod) = @_;
    my $r = $http->get('http://' . addr($pod) . '/metrics');
    my %m;
    for (split /\n/, $r->{content} // '') {
        next if /^#/;
        $m{$1} = $2 + 0 if /^(\S+?)(?:\{[^}]*\})? (\S+)$/ && !exists $m{$1};
    }
    return \%m;
}

# token-id prompts: exact token counts; 600 tokens = 37 full blocks + 8
sub prompt { my ($base, $n) = @_; [ map { $base + $_ } 1 .. $n ] }
my $pulled = sub { my ($n) = @_; int(($n - 1) / 16) * 16 };

ok(wait_until(10, sub {
    for my $p ($A0 .. $A2, $B0, $B1, "127.0.0.2:${C}",
               "127.0.0.3:${C}") {
        return 0 unless $http->get('http://' . addr($p) . '/health')
                             ->{status} == 200;
    }
    1;
}), 'every pod answers /health');

# ---- roles -------------------------------------------------------------
is(state($A0)->{role}, 'prefill', "pod ${A0} is a prefill pod");
is(state($A1)->{role}, 'decode', "pod ${A1} is a decode pod");
my $raw = $http->get("http://127.0.0.1:${A1}/metrics")->{content};
like($raw, qr/^llmd_sim_pod_info\{engine="0",model_name="sim\/model",role="decode"\} 1\.0$/m,
     'llmd_sim_pod_info names the role');
like($raw, qr/^vllm:nixl_xfer_time_seconds_bucket\{[^}]*le="0.005"\} 0\.0$/m,
     'decode pod: vLLM NIXL histograms');
like($raw, qr/^vllm:nixl_bytes_transferred_bucket\{[^}]*le="8589934592"\} 0\.0$/m,
     'NIXL bytes buckets printed exactly');

# KV events of the decode pod 18201 (bound: 18220 + its index 1)
my $ctx = ZMQ::FFI->new();
my $sub = $ctx->socket(ZMQ_SUB);
$sub->set_linger(0);
$sub->subscribe('');
$sub->connect("tcp://127.0.0.1:${KV1}");
my $mp = Data::MessagePack->new;
sub recv_batch {
    my ($secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        return $mp->unpack(($sub->recv_multipart())[2]) if $sub->has_pollin;
        sleep 0.005;
    }
    return undef;
}
# the SUB connects asynchronously: warm it up with a local request
ok(wait_until(10, sub {
    complete($A1, undef, prompt => prompt(900000 + int(rand 1e5), 40),
             max_tokens => 1);
    defined recv_batch(0.3);
}), 'decode pod KV events arrive');
1 while recv_batch(0.2);

# ---- a prefill leg sent directly ----------------------------------------
my ($lr, $leg) = complete($A0, undef, prompt => prompt(10000, 600),
    max_tokens => 1, kv_transfer_params => { do_remote_decode => JSON::PP::true,
                                             do_remote_prefill => JSON::PP::false });
is($lr->{status}, 200, 'prefill pod answers a prefill leg');
my $kvp = $leg ? $leg->{kv_transfer_params} : {};
is(scalar @{ $kvp->{remote_block_ids}[0] // [] }, 37,
   'kv_transfer_params names the 37 full prompt blocks');
ok($kvp->{do_remote_prefill} && !$kvp->{do_remote_decode}
   && $kvp->{remote_host} eq '127.0.0.1' && $kvp->{remote_port} == 5600
   && $kvp->{remote_engine_id} =~ /^[0-9a-f-]{36}$/
   && $kvp->{remote_request_id} eq $leg->{id},
   'remote engine, request, host and side-channel port as NIXL');
cmp_ok(state($A0)->{cached_blocks}, '>=', 37,
       'the prefill pod keeps the blocks cached');
my ($nr, $nj) = complete($A0, undef, prompt => prompt(11000, 40));
ok($nj && exists $nj->{kv_transfer_params}
   && !defined $nj->{kv_transfer_params},
   'a request that is no prefill leg: kv_transfer_params null');

# ---- P/D through the decode pod's sidecar ---------------------------------
my %p0 = %{ state($A0)->{pd} // {} };
my ($dr, $dj) = complete($A1, "127.0.0.1:${A0}", prompt => prompt(20000, 600));
is($dr->{status}, 200, 'decode pod answers a request with x-prefiller-host-port');
is($dr->{headers}{'x-sim-pod'}, "${A1}", 'the answer comes from the decode pod');
is($dj->{usage}{completion_tokens}, 4, 'all tokens decoded');
is($dj->{usage}{prompt_tokens_details}{cached_tokens}, 0,
   "usage reports the prefiller's cached tokens (llm-d rewrites them)");
my %p1 = %{ state($A0)->{pd} // {} };
is($p1{prefill_legs} - $p0{prefill_legs}, 1, 'the prefill pod served one leg');
my $d = state($A1)->{pd} // {};
is($d->{sidecar_prefills}, 1, 'the sidecar sent one prefill leg');
is($d->{kv_pulls}, 1, 'the decode pod pulled once');
is($d->{kv_pull_bytes}, 592 * $KVB, 'it pulled 592 tokens x KV bytes');
my $dm = metrics($A1);
is($dm->{'vllm:nixl_bytes_transferred_sum'}, 592 * $KVB,
   'vllm:nixl_bytes_transferred_sum');
is($dm->{'vllm:external_prefix_cache_hits_total'}, 592,
   'vllm:external_prefix_cache_hits_total counts the pulled tokens');
is($dm->{'llmd_sim_pd_kv_pull_bytes_total'}, 592 * $KVB,
   'llmd_sim_pd_kv_pull_bytes_total');

# the pulled blocks are cached and published as the decode pod's own
my @stored;
while (my $b = recv_batch(1)) {
    push @stored, grep { $_->[0] eq 'BlockStored' } @{ $b->[1] };
    last if grep { scalar @{ $_->[3] } >= 592 } @stored;
}
my ($pull_ev) = grep { scalar @{ $_->[3] } >= 592 } @stored;
ok($pull_ev && scalar @{ $pull_ev->[1] } == 37
   && $pull_ev->[3][0] == 20001 && $pull_ev->[3][591] == 20592,
   'BlockStored of the 37 pulled blocks on the decode pod');

# the same prompt again: the decode pod has the blocks, nothing to pull
($dr, $dj) = complete($A1, "127.0.0.1:${A0}", prompt => prompt(20000, 600));
$d = state($A1)->{pd} // {};
is($dr->{status}, 200, 'same prompt again through the sidecar');
is($d->{kv_pulls}, 1, 'nothing pulled: the decode pod caches the prompt');
is($d->{remote_prefills}, 2, 'both came with remote KV');
# a longer prompt: only the 10 new full blocks are pulled
($dr, $dj) = complete($A1, "127.0.0.1:${A0}",
                      prompt => [ @{ prompt(20000, 600) }, 1 .. 160 ]);
$d = state($A1)->{pd} // {};
is($d->{kv_pull_bytes}, (592 + 160) * $KVB,
   'a longer prompt pulls only its blocks the decode pod lacks');

# chat through the sidecar: the leg goes to /v1/chat/completions
my %c0 = %{ state($A0)->{pd} // {} };
my $cr = post($A1, '/v1/chat/completions',
              { model => $MODEL, max_tokens => 3,
                messages => [ { role => 'user', content => 'hello ' x 200 } ] },
              "127.0.0.1:${A0}");
my $cj = eval { $json->decode($cr->{content}) } || {};
is($cj->{object}, 'chat.completion', 'chat through the sidecar');
is((state($A0)->{pd} // {})->{prefill_legs} - $c0{prefill_legs}, 1,
   'its prefill leg reached the prefill pod');

# streaming: the client streams from the decode pod as usual
my $sr = post($A1, '/v1/completions',
              { model => $MODEL, prompt => prompt(30000, 100), max_tokens => 3,
                ignore_eos => JSON::PP::true, stream => JSON::PP::true },
              "127.0.0.1:${A0}");
my @ev = grep { length } split /\n\n/, $sr->{content} // '';
ok($sr->{headers}{'content-type'} =~ m{^text/event-stream}
   && @ev == 4 && $ev[-1] eq 'data: [DONE]', 'a stream through the sidecar');

# ---- without the header: the decode pod prefills itself ------------------
my %s0 = %{ state($A2)->{pd} // {} };
my $m0 = metrics($A2);
my ($ar, $aj) = complete($A2, undef, prompt => prompt(40000, 600));
my %s1 = %{ state($A2)->{pd} // {} };
is($ar->{status}, 200, 'decode pod without x-prefiller-host-port');
ok($s1{sidecar_prefills} == $s0{sidecar_prefills}
   && $s1{kv_pulls} == $s0{kv_pulls}, 'no prefill leg, no pull');
is(metrics($A2)->{'vllm:prompt_tokens_total'}
   - $m0->{'vllm:prompt_tokens_total'}, 600, 'it prefilled the prompt itself');

# ---- a prefiller that fails -----------------------------------------------
my ($ur) = complete($A2, "127.0.0.1:${NONE}", prompt => prompt(50000, 100));
my $ue = eval { $json->decode($ur->{content}) } || {};
is($ur->{status}, 502, 'unreachable prefiller: 502 as llm-d\'s sidecar');
is($ue->{error}{type}, 'BadGateway', 'with an OpenAI-style error body');
is((state($A2)->{pd} // {})->{sidecar_failures}, 1, 'failure counted');
# the prefiller's own error goes to the client as it is
my ($xr) = complete($A1, "127.0.0.2:${C}", prompt => prompt(50000, 100));
my $xe = eval { $json->decode($xr->{content}) } || {};
is($xr->{status}, 404, "the prefiller's 404 (another model) is passed on");
is($xe->{error}{type}, 'NotFoundError', 'with its body');
my ($br) = complete($A1, 'prefill-0:8000', prompt => prompt(50000, 100));
is($br->{status}, 502, 'a prefiller that is no IPv4:port: 502');
is(state($A1)->{waiting}, 0,
   'nothing left waiting on the decode pod');

# ---- --pd-fallback: a failed leg is prefilled locally ---------------------
my ($fr, $fj) = complete($B1, "127.0.0.1:${NONE}", prompt => prompt(60000, 100));
is($fr->{status}, 200, 'fallback: unreachable prefiller, answered anyway');
my $f = state($B1)->{pd} // {};
ok($f->{sidecar_failures} == 1 && $f->{sidecar_fallbacks} == 1
   && $f->{kv_pulls} == 0, 'fallback counted, nothing pulled');
my $t0 = time;
($fr, $fj) = complete($B1, "127.0.0.1:${SILENT}", prompt => prompt(61000, 100));
my $waited = time - $t0;
is($fr->{status}, 200, 'a prefiller that never answers: fallback');
ok($waited >= 0.9 && $waited < 5, sprintf(
   'after the 1 s --pd-timeout-ms (%.2f s)', $waited));
is((state($B1)->{pd} // {})->{sidecar_fallbacks}, 2, 'second fallback');

# a client that leaves while the prefill leg runs
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $B1)
    or die "connect ${B1}: $!";
my $body = $json->encode({ model => $MODEL, prompt => prompt(62000, 100),
                           max_tokens => 2 });
print $s "POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
    . "x-prefiller-host-port: 127.0.0.1:${SILENT}\r\n"
    . "Content-Type: application/json\r\nContent-Length: "
    . length($body) . "\r\n\r\n$body";
ok(wait_until(3, sub { (state($B1)->{pd} // {})->{sidecar_prefills} == 3 }),
   'a third prefill leg starts');
close $s;
ok(wait_until(3, sub { (state($B1)->{pd} // {})->{sidecar_fallbacks} == 3 }),
   'it ends at its timeout after the client left');
my $st = state($B1);
ok($st->{running} == 0 && $st->{waiting} == 0 && $st->{loading} == 0,
   'and leaves nothing behind');

# ---- the transfer time is in the decode pod's TTFT -------------------------
# B pulls 1 ms (simulated) per token: 4992 tokens take 4.992 s, 0.5 s wall
my $n = 5000;
my $tb = $pulled->($n) * 1e6 * 8 / 8e9;
my $fast_ttft = metrics($A1);
my ($qr) = complete($A1, "127.0.0.1:${A0}", prompt => prompt(70000, $n),
                    max_tokens => 1);
my $fast = metrics($A1)->{'vllm:time_to_first_token_seconds_sum'}
           - $fast_ttft->{'vllm:time_to_first_token_seconds_sum'};
my $slow0 = metrics($B1);
my $first;
$t0 = time;
my $sres = $http->request('POST', "http://127.0.0.1:${B1}/v1/completions", {
    headers => { 'content-type' => 'application/json',
                 'x-prefiller-host-port' => "127.0.0.1:${B0}" },
    content => $json->encode({ model => $MODEL, prompt => prompt(70000, $n),
                               max_tokens => 2, ignore_eos => JSON::PP::true,
                               stream => JSON::PP::true }),
    data_callback => sub {
        $first //= time - $t0 if $_[0] =~ /"text"/;
    } });
my $slow1 = metrics($B1);
my $slow = $slow1->{'vllm:time_to_first_token_seconds_sum'}
           - $slow0->{'vllm:time_to_first_token_seconds_sum'};
is($sres->{status}, 200, 'a long prompt over the slow KV link');
is($slow1->{'vllm:nixl_xfer_time_seconds_sum'}, $tb,
   "transfer time = bytes / bandwidth ($tb s)");
ok($slow >= $tb && $slow < $tb + 0.5, sprintf(
   'decode TTFT %.3f s includes the %.3f s transfer', $slow, $tb));
ok($fast < 0.3, sprintf('at 800 Gbit/s the same pull costs little (TTFT %.3f s)',
                         $fast));
ok(defined $first && $first >= $tb / 10, sprintf(
   'the client waits for it too (%.3f s wall at time scale 10)', $first // -1));

# ---- pods on several addresses (--hosts) ---------------------------------
my $hr = post("127.0.0.3:${C}", '/v1/completions',
              { model => 'sim/other', prompt => prompt(80000, 200),
                max_tokens => 2, ignore_eos => JSON::PP::true },
              "127.0.0.2:${C}");
is($hr->{status}, 200, '--hosts: decode 127.0.0.3 with prefiller 127.0.0.2');
is((state("127.0.0.3:${C}")->{pd} // {})->{kv_pull_bytes},
   $pulled->(200) * $KVB, 'it pulled from the other address');
my $hl = post("127.0.0.2:${C}", '/v1/completions',
              { model => 'sim/other', prompt => prompt(81000, 40),
                max_tokens => 1,
                kv_transfer_params => { do_remote_decode => JSON::PP::true } });
my $hk = (eval { $json->decode($hl->{content}) } || {})->{kv_transfer_params}
         || {};
ok(($hk->{remote_host} // '') eq '127.0.0.2' && ($hk->{remote_port} // 0) == 5600,
   'its side channel is on its own address');

done_testing();
