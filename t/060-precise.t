# Precise prefix-cache routing from vLLM KV events: a fake publisher in this
# test process sends vLLM's three-frame messages; the helper indexes them and
# workers score pods by their longest cached prefix of the prompt's tokens.
# The token ids the fake pod reports are Hugging Face's (the t/060 cases of
# t/data/tokenizer-tiny-ref.json, tools/tokenizer-tiny-ref.js), never the
# module's own tokenizer's.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use JSON::PP ();
use File::Temp ();
use File::Copy ();
use Llmd::Fixtures;
use Llmd::Ports qw(port);
use Llmd::Util;
use Llmd::KV;

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

our $Tok = repo_root() . "/t/data/tokenizer-tiny.json";
our $Epp = repo_root() . "/t/data/epp-precise-tiny.yaml";
our $KvPort = port(30);
# nginx binds it: a leftover there would make the helper wait for it
Llmd::Ports::assert_free($KvPort);
our $Pod2 = "127.0.0.1:" . pod_port(2);
our $Topic = "kv\@$Pod2\@m";

our $Front = <<'EOF';
    location /v1/ {
        proxy_pass http://vllm;
        add_header X-LLMD-Endpoint $llmd_endpoint always;
        add_header X-LLMD-Prefix-Match $llmd_prefix_match always;
    }
    location = /llmd/status { llmd_status; }
EOF

# 17 full blocks of 4 tokens (with the BOS the completions API adds).
our $P = "The quick brown fox jumps over the lazy dog and keeps running "
       . "far away";
our @Tokens = @{ hf_ids("t/060 prompt", $P) };
our $Blocks = int(@Tokens / 4);
our $Request = "$P and then some more words";
our $RequestBlocks = int(@{ hf_ids("t/060 request", $Request) } / 4);
our @Hashes = map { 5000 + $_ } 1 .. $Blocks;
our $Stored = kv_stored(\@Hashes, undef, [ @Tokens[0 .. 4 * $Blocks - 1] ],
                        4);

# The ids Hugging Face's tokenizer gives $text (with the BOS), from the
# committed reference; dies if the reference was made for another text.
sub hf_ids {
    my ($name, $text) = @_;
    my $file = repo_root() . "/t/data/tokenizer-tiny-ref.json";
    open my $fh, '<', $file or die "$file: $!";
    my $ref = JSON::PP->new->decode(do { local $/; <$fh> });
    my ($c) = grep { $_->{name} eq $name } @{ $ref->{cases} };
    die "$file has no case \"$name\"" unless $c;
    die "$file: \"$name\" is not this test's text (tools/tokenizer-tiny-ref.js)"
        unless $c->{hex} eq unpack("H*", $text) && $c->{add_special};
    return $c->{ids};
}

sub precise_upstream {
    my (%o) = @_;
    return pods(1, 2) . upstream([1, 2],
        balancer => "config=" . ($o{epp} // $Epp),
        extra => $o{extra},
        directives => "llmd_metrics_interval "
                    . ($o{interval} // "50ms") . ";\n"
                    . "    llmd_tokenizer " . ($o{tok} // $Tok) . ";\n"
                    . ($o{tokcache} ? "    llmd_tokenizer_cache $o{tokcache};\n"
                                    : "")
                    . "    llmd_kv_events "
                    . ($o{events} // "bind tcp://127.0.0.1:$KvPort") . ";\n"
                    . (exists $o{spec} && !defined $o{spec} ? ""
                       : "    llmd_kv_speculative " . ($o{spec} // "0")
                         . ";"));
}

sub kv_of { return kv_status_endpoint(status_json(), $_[0] // $Pod2); }

# The tiny tokenizer beside the Llama-3 chat template: a tokenizer
# directory, so that chat requests are scored precisely.
our $ChatTok = File::Temp::tempdir("llmd-060-chat-XXXXXX", TMPDIR => 1,
                                   CLEANUP => 1);
chmod 0755, $ChatTok;
File::Copy::copy($Tok, "$ChatTok/tokenizer.json") or die "copy: $!";
File::Copy::copy(repo_root() . "/t/data/chat/llama3.json",
                 "$ChatTok/tokenizer_config.json") or die "copy: $!";

# A fake pod whose /metrics fails while the file $Down exists.
our $Down = "/tmp/llmd-060-down-$$";    # the helper (nobody) stats it
END { unlink $Down }

# Publishes batches (a fresh sequence number each time, as a publisher that
# keeps running does) until the status page satisfies $cond.
sub publish_until {
    my ($pub, $payload, $cond, $topic) = @_;
    return Llmd::Util::wait_until(10, sub {
        $pub->send($topic // $Topic, $payload);
        Time::HiRes::sleep(0.05);
        return $cond->();
    });
}

sub post { return "POST /v1/completions\n" . completion($_[0]); }

# Both pods send an empty batch, so their event streams count as live.
sub make_live {
    my $pub = kv_publisher(connect => "tcp://127.0.0.1:$KvPort");
    for my $pod (1, 2) {
        my $name = "127.0.0.1:" . pod_port($pod);
        publish_until($pub, kv_batch(), sub {
            my $kv = kv_of($name) or return 0;
            return $kv->{live};
        }, "kv\@$name\@m") or die "pod $pod never became live";
    }
    $pub->close;
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("main_config", "load_module $ENV{TEST_NGINX_LLMD_SO};")
        unless defined $block->main_config;
    $block->set_value("config", $Front) unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: after pod 2 reports the prompt's blocks, a request sharing the prefix goes to pod 2
--- http_config eval
main::precise_upstream()
--- init
wait_fresh(2) or die "metrics never became fresh";
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{live} && $kv->{entries} >= $main::Blocks;
}) or die "pod 2 never indexed its blocks";
# a pod the upstream does not know is counted and ignored
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $st = status_json() or return 0;
    return $st->{upstreams}[0]{kv_events}{unknown_pod_messages} >= 1;
}, "kv\@10.9.9.9:8000\@m") or die "unknown pod not counted";
$pub->close;
--- request eval
[ (main::post($main::Request)) x 4,
  "GET /llmd/status" ]
--- response_headers_like eval
[ ({ "X-LLMD-Endpoint" => qr/^\Q$main::Pod2\E$/,
     "X-LLMD-Prefix-Match" => qr{^17/$main::RequestBlocks$} }) x 4, {} ]
--- response_body_like eval
[ (qr/^pod2/) x 4,
  qr/"prefix_scorer":"precise".*"blocks_looked_up":${\ (4 * $main::RequestBlocks)},"blocks_hit":68\}.*"kv_events":\{"mode":"bind","block_size":4,"hash_seed":"42","unknown_pod_messages":[1-9]/s ]
--- error_log
prefaulted in the worker:
--- no_error_log
[error]



=== TEST 2: AllBlocksCleared forgets the pod's blocks
--- http_config eval
main::precise_upstream()
--- init
wait_fresh(2) or die "metrics never became fresh";
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{entries} >= $main::Blocks;
}) or die "pod 2 never indexed its blocks";
# the helper measured how long it held the index lock to apply them
my $ke = status_json()->{upstreams}[0]{kv_events};
$ke->{lock_holds} >= 1 && $ke->{lock_hold_us_mean} > 0
    && $ke->{lock_hold_us_max} >= $ke->{lock_hold_us_mean}
    or die "index lock holds not measured: "
           . join(", ", map { "$_ $ke->{$_}" }
                  qw(lock_holds lock_hold_us_mean lock_hold_us_max));
main::publish_until($pub, kv_batch(kv_cleared()), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{entries} == 0;
}) or die "AllBlocksCleared did not clear pod 2";
$pub->close;
--- request eval
main::post($main::P)
--- response_headers_like
X-LLMD-Prefix-Match: ^0/17$



=== TEST 3: a sequence that restarts (engine restart) clears the pod first
--- http_config eval
main::precise_upstream()
--- init
wait_fresh(2) or die "metrics never became fresh";
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
$pub->{seq} = 100;
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{entries} >= $main::Blocks;
}) or die "pod 2 never indexed its blocks";
# the restarted engine starts at 0 and has stored something else
my $other = kv_stored([ 9001 ], undef, [ 1, 2, 3, 4 ], 4);
$pub->send($main::Topic, kv_batch($other), 0);
Llmd::Util::wait_until(10, sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{clears} >= 1 && $kv->{entries} == 1;
}) or die "restart did not clear pod 2";
$pub->close;
--- request eval
main::post($main::P)
--- response_headers_like
X-LLMD-Prefix-Match: ^0/17$
--- error_log
event sequence restarted (engine restart)



=== TEST 4: a gap without a replay socket clears the pod
--- http_config eval
main::precise_upstream()
--- init
wait_fresh(2) or die "metrics never became fresh";
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{entries} >= $main::Blocks;
}) or die "pod 2 never indexed its blocks";
$pub->{seq} += 5;
$pub->send($main::Topic, kv_batch());
Llmd::Util::wait_until(10, sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{gaps} >= 1 && $kv->{entries} == 0;
}) or die "gap did not clear pod 2";
$pub->close;
--- request
GET /llmd/status
--- response_body_like chop
"gaps":[1-9]\d*,"replays":0
--- error_log
event batches lost and no replay socket



=== TEST 5: per-pod connect mode: a gap is filled from the pod's replay socket
--- http_config eval
main::precise_upstream(events => "connect port=+40 replay=+50")
--- init
wait_fresh(2) or die "metrics never became fresh";
my $base = main::pod_port(2);
my $pub = kv_publisher(bind => "tcp://127.0.0.1:" . ($base + 40));
my $rep = Llmd::KV::Replayer->new("tcp://127.0.0.1:" . ($base + 50));
# on connecting, the helper asks for whatever the pod still buffers
my ($id, $from) = $rep->request(10);
defined $id or die "no replay request on connect";
$from == 0 or die "replay on connect asked from $from";
$rep->reply($id, $main::Topic);
# live batches flow (no events) until the helper sees them
main::publish_until($pub, kv_batch(), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{batches} >= 1;
}) or die "live batches never arrived";
# skip one sequence number: the helper must ask for it
my $missing = $pub->{seq}++;
$pub->send($main::Topic, kv_batch());
($id, $from) = $rep->request(10);
defined $id or die "no replay request after the gap";
$from == $missing or die "replay asked from $from, not $missing";
$rep->reply($id, $main::Topic, [ $missing, kv_batch($main::Stored) ]);
Llmd::Util::wait_until(10, sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{entries} >= $main::Blocks && $kv->{replays} >= 2;
}) or die "replayed blocks were not indexed";
$main::Pub = $pub;
$main::Rep = $rep;
--- request eval
[ main::post($main::P), "GET /llmd/status" ]
--- response_headers_like eval
[ { "X-LLMD-Endpoint" => qr/^\Q$main::Pod2\E$/,
    "X-LLMD-Prefix-Match" => qr{^17/17$} }, {} ]
--- response_body_like eval
[ qr/^pod2/, qr/"mode":"connect"/ ]



=== TEST 6: per-pod connect mode: a pod that disconnects is cleared
--- http_config eval
main::precise_upstream(events => "connect port=+60")
--- init
wait_fresh(2) or die "metrics never became fresh";
my $pub = kv_publisher(bind => "tcp://127.0.0.1:" . (main::pod_port(2) + 60));
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{entries} >= $main::Blocks;
}) or die "pod 2 never indexed its blocks";
$pub->close;
Llmd::Util::wait_until(10, sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{entries} == 0 && !$kv->{live};
}) or die "disconnect did not clear pod 2";
--- request eval
main::post($main::P)
--- response_headers_like
X-LLMD-Prefix-Match: ^0/17$
--- error_log
event stream disconnected



=== TEST 7: speculative entries send a burst of siblings to the first pick
--- http_config eval
main::precise_upstream(spec => "2s")
--- init
wait_fresh(2) or die "metrics never became fresh";
main::make_live();
--- request eval
[ (main::post($main::P)) x 4 ]
--- response_headers_like eval
[ { "X-LLMD-Prefix-Match" => qr{^0/17$} },
  ({ "X-LLMD-Prefix-Match" => qr{^17/17$} }) x 3 ]
--- no_error_log
[error]



=== TEST 8: without speculative entries live pods match nothing until events come
--- http_config eval
main::precise_upstream(spec => "0")
--- init
wait_fresh(2) or die "metrics never became fresh";
main::make_live();
--- request eval
[ (main::post($main::P)) x 3 ]
--- response_headers_like eval
[ ({ "X-LLMD-Prefix-Match" => qr{^0/17$} }) x 3 ]



=== TEST 9: without llmd_tokenizer a precise config runs in approximate mode
--- http_config eval
pods(1, 2) . upstream([1, 2], balancer => "config=$main::Epp")
--- request
GET /llmd/status
--- response_body_like chop
"prefix_scorer":"approximate"
--- error_log
no "llmd_tokenizer" is set; it runs in approximate mode



=== TEST 10: bind mode: events under another pod's name, from another address, are dropped
--- http_config eval
main::precise_upstream(extra => "    server 127.0.0.2:" . main::pod_port(3) . ";\n")
--- init
my $other = "127.0.0.2:" . main::pod_port(3);
# this process publishes from 127.0.0.1: it may speak for 127.0.0.1 pods only
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
Llmd::Util::wait_until(10, sub {
    $pub->send("kv\@$other\@m", kv_batch($main::Stored));
    Time::HiRes::sleep(0.05);
    my $st = status_json() or return 0;
    return $st->{upstreams}[0]{kv_events}{spoofed_messages} >= 3;
}) or die "spoofed messages were not counted";
my $kv = main::kv_of($other);
die "the spoofed pod was indexed" if $kv->{live} || $kv->{entries};
# the same publisher for a pod of its own address is heard
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{entries} >= $main::Blocks;
}) or die "a genuine pod was not indexed";
# from the pod's own address (ZeroMQ's source;destination form) it is heard
my $own = kv_publisher(connect => "tcp://127.0.0.2:0;127.0.0.1:$main::KvPort");
main::publish_until($own, kv_batch(), sub {
    my $kv = main::kv_of($other) or return 0;
    return $kv->{live};
}, "kv\@$other\@m") or die "127.0.0.2 was not heard from its own address";
$own->close;
$pub->close;
--- request
GET /llmd/status
--- response_body_like chop
"spoofed_messages":[1-9]
--- grep_error_log eval
qr/KV events for 127\.0\.0\.2:\d+ of upstream "vllm" came from 127\.0\.0\.1 and are dropped/
--- grep_error_log_out eval
qr/\A[^\n]+\n\z/



=== TEST 11: bind mode with peers=any accepts a pod's events from any address
--- http_config eval
main::precise_upstream(events => "bind tcp://127.0.0.1:$main::KvPort peers=any",
                       extra => "    server 127.0.0.2:" . main::pod_port(3) . ";\n")
--- init
my $other = "127.0.0.2:" . main::pod_port(3);
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of($other) or return 0;
    return $kv->{entries} >= $main::Blocks;
}, "kv\@$other\@m") or die "not indexed with peers=any";
$pub->close;
--- request
GET /llmd/status
--- response_body_like chop
"spoofed_messages":0,



=== TEST 12: a pod whose metrics fail is not trusted for precise scoring until its events come again
--- http_config eval
flaky_pod(2, $main::Down) . pods(1)
. upstream([1, 2], balancer => "config=$main::Epp",
    directives => "llmd_metrics_interval 50ms;\n"
                . "    llmd_tokenizer $main::Tok;\n"
                . "    llmd_kv_events bind tcp://127.0.0.1:$main::KvPort;\n"
                . "    llmd_kv_speculative 0;")
--- init
unlink $main::Down;
wait_fresh(2) or die "metrics never became fresh";
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{entries} >= $main::Blocks && $kv->{live};
}) or die "pod 2 never indexed its blocks";
# pod 2 stops answering its metrics (as a pod that restarts)
open my $fh, '>', $main::Down or die;
close $fh;
Llmd::Util::wait_until(10, sub { !main::kv_of()->{live} })
    or die "the index of a pod whose scrapes fail stayed live";
unlink $main::Down;
# its entries are kept, but used again only once its events come again:
# meanwhile it is scored by what was routed to it (nothing)
my $r = Llmd::Util::http_request(method => "POST", path => "/v1/completions",
                                 body => completion($main::P));
die "while stale: $r->{headers}{'x-llmd-prefix-match'}"
    unless $r->{headers}{'x-llmd-prefix-match'} eq "0/17";
# the same prompt again: the pod it was routed to matches all of it in the
# approximate index, scaled to the precise blocks
$r = Llmd::Util::http_request(method => "POST", path => "/v1/completions",
                              body => completion($main::P));
die "stale, routed before: $r->{headers}{'x-llmd-prefix-match'}"
    unless $r->{headers}{'x-llmd-prefix-match'} eq "17/17";
die "entries dropped" unless main::kv_of()->{entries} >= $main::Blocks;
main::publish_until($pub, kv_batch(), sub { main::kv_of()->{live} })
    or die "pod 2 never live again";
$pub->close;
--- request eval
main::post($main::P)
--- response_headers_like
X-LLMD-Prefix-Match: ^17/17$



=== TEST 13: a replay that gets no answer is given up after its 5 s deadline: the pod is cleared
--- http_config eval
main::precise_upstream(events => "connect port=+45 replay=+55")
--- init
wait_fresh(2) or die "metrics never became fresh";
$_ && $_->close for $main::Pub, $main::Rep;
my $base = main::pod_port(2);
my $pub = kv_publisher(bind => "tcp://127.0.0.1:" . ($base + 45));
my $rep = Llmd::KV::Replayer->new("tcp://127.0.0.1:" . ($base + 55));
my ($id, $from) = $rep->request(10);
defined $id or die "no replay request on connect";
$rep->reply($id, $main::Topic);
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{live} && $kv->{entries} >= $main::Blocks;
}) or die "pod 2 never indexed its blocks";
my $clears = main::kv_of()->{clears};
# a gap: the helper asks for the missing batch, and nobody answers
my $missing = $pub->{seq}++;
$pub->send($main::Topic, kv_batch());
my $t0 = Time::HiRes::time();
($id, $from) = $rep->request(10);
defined $id && $from == $missing
    or die "no replay request for the gap at $missing";
die "cleared before the deadline"
    if Llmd::Util::wait_until(3.5, sub { main::kv_of()->{clears} > $clears });
Llmd::Util::wait_until(10, sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{clears} > $clears && $kv->{entries} == 0 && !$kv->{live};
}) or die "the unanswered replay never cleared pod 2";
my $took = Time::HiRes::time() - $t0;
die sprintf("cleared %.2f s after the replay request, the deadline is 5 s",
            $took) if $took < 4.5 || $took > 7.5;
$main::Pub = $pub;
$main::Rep = $rep;
--- request
GET /llmd/status
--- response_body_like chop
"gaps":[1-9]\d*,
--- error_log eval
qr/llmd: KV index of \Q$main::Pod2\E in upstream "vllm" cleared: replay timed out/
--- timeout: 5



=== TEST 14: messages that are not [topic, 8-byte sequence, payload] are counted as malformed and dropped
--- http_config eval
main::precise_upstream()
--- init
wait_fresh(2) or die "metrics never became fresh";
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
# once pod 2's stream is live, the connection is up: nothing sent after
# it is lost
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{live} && $kv->{entries} >= $main::Blocks;
}) or die "pod 2 never indexed its blocks";
my $seq = pack("Q>", $pub->{seq}++);
my @bad = ([ $main::Topic, $seq ],                         # 2 frames
           [ $main::Topic, $seq, kv_batch(), "extra" ],    # 4 frames
           [ $main::Topic, "1234567", kv_batch() ],        # 7-byte sequence
           [ "kv\@no-model", $seq, kv_batch() ],           # topic without @model
           [ $main::Topic, $seq, "\xc1 not msgpack" ]);    # payload
$pub->{sock}->send_multipart($_) for @bad;
Llmd::Util::wait_until(5, sub {
    my $st = status_json() or return 0;
    return $st->{upstreams}[0]{kv_events}{malformed} >= @bad;
}) or die "malformed: " . status_json()->{upstreams}[0]{kv_events}{malformed};
Time::HiRes::sleep(0.3);
my $kv = main::kv_of();
die "pod 2 after malformed messages: " . JSON::PP->new->encode($kv)
    unless $kv->{live} && $kv->{entries} >= $main::Blocks;
$pub->close;
--- request
GET /llmd/status
--- response_body_like chop
"unknown_pod_messages":0,"spoofed_messages":0,"malformed":5,



=== TEST 15: the in-flight load counts the prompt's tokens as the tokenizer counts them (llm-d's precise setup asks vLLM), not 4 bytes to a token
--- http_config eval
main::precise_upstream(interval => "60s")
--- init
wait_fresh(2) or die "metrics never became fresh";
my $r = Llmd::Util::http_request(method => "POST", path => "/v1/completions",
                                 body => completion($main::P));
$r->{status} == 200 or die "status $r->{status}";
my $sent = 0;
$sent += $_->{inflight}{since_scrape}{sent_tokens}
    for @{ status_json()->{upstreams}[0]{endpoints} };
# nothing cached anywhere: every token of the prompt is computed
$sent == scalar(@main::Tokens)
    or die "sent tokens $sent, the prompt has " . scalar(@main::Tokens)
           . " tokens (" . length($main::P) . " bytes)";
--- request
GET /llmd/status
--- response_body_like: "prefix_scorer":"precise"
--- no_error_log
[error]



=== TEST 16: without llmd_kv_speculative, speculative entries follow the configuration: speculativeIndexing true (llm-d's producer parameter) sends the siblings to the first pick
--- user_files
>>> spec.yaml
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-producer
  parameters:
    tokenProcessorConfig: {blockSize: 4, hashSeed: "42"}
    speculativeIndexing: true
    speculativeTTL: 2s
- type: prefix-cache-scorer
  parameters:
    prefixMatchInfoProducerName: precise-prefix-cache-producer
- type: kv-cache-scorer
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: prefix-cache-scorer, weight: 2}
  - {pluginRef: kv-cache-scorer, weight: 1}
  - {pluginRef: queue-scorer, weight: 1}
--- http_config eval
main::precise_upstream(spec => undef, epp => "../html/spec.yaml")
--- init
wait_fresh(2) or die "metrics never became fresh";
main::make_live();
--- request eval
[ (main::post($main::P)) x 3 ]
--- response_headers_like eval
[ { "X-LLMD-Prefix-Match" => qr{^0/17$} },
  ({ "X-LLMD-Prefix-Match" => qr{^17/17$} }) x 2 ]
--- no_error_log
[error]



=== TEST 17: without llmd_kv_speculative and without speculativeIndexing (llm-d's default: false) there are no speculative entries
--- http_config eval
main::precise_upstream(spec => undef)
--- init
wait_fresh(2) or die "metrics never became fresh";
main::make_live();
--- request eval
[ (main::post($main::P)) x 3 ]
--- response_headers_like eval
[ ({ "X-LLMD-Prefix-Match" => qr{^0/17$} }) x 3 ]
--- no_error_log
[error]



=== TEST 18: the older form (prefix-cache-scorer, mode cache_tracking) takes speculativeIndexing too
--- user_files
>>> spec-legacy.yaml
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
  parameters:
    mode: cache_tracking
    speculativeIndexing: true
    indexerConfig:
      tokenProcessorConfig: {blockSize: 4, hashSeed: "42"}
- type: kv-cache-scorer
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - {pluginRef: prefix-cache-scorer, weight: 2}
  - {pluginRef: kv-cache-scorer, weight: 1}
  - {pluginRef: queue-scorer, weight: 1}
--- http_config eval
main::precise_upstream(spec => undef, epp => "../html/spec-legacy.yaml")
--- init
wait_fresh(2) or die "metrics never became fresh";
main::make_live();
--- request eval
[ (main::post($main::P)) x 3 ]
--- response_headers_like eval
[ { "X-LLMD-Prefix-Match" => qr{^0/17$} },
  ({ "X-LLMD-Prefix-Match" => qr{^17/17$} }) x 2 ]
--- no_error_log
[error]
is not used



=== TEST 19: the tokenizer's prefix cache: a repeated prompt and one sharing its prefix reuse cached ids and match as tokenized whole
--- http_config eval
main::precise_upstream(tokcache => "64k stride=1")
--- init
wait_fresh(2) or die "metrics never became fresh";
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{live} && $kv->{entries} >= $main::Blocks;
}) or die "pod 2 never indexed its blocks";
$pub->close;
--- request eval
[ (main::post($main::Request)) x 2,
  main::post("$main::P and then some other words"),
  "GET /llmd/status" ]
--- response_headers_like eval
[ ({ "X-LLMD-Endpoint" => qr/^\Q$main::Pod2\E$/,
     "X-LLMD-Prefix-Match" => qr{^17/$main::RequestBlocks$} }) x 2,
  { "X-LLMD-Endpoint" => qr/^\Q$main::Pod2\E$/,
    "X-LLMD-Prefix-Match" => qr{^17/$main::RequestBlocks$} }, {} ]
--- response_body_like eval
[ (qr/^pod2/) x 3,
  qr/"tokenizer_cache":\{"size":65536,"bytes":\d+,"lookups":3,"hits":2,"reused_ids":[1-9]/ ]
--- no_error_log
[error]



=== TEST 20: llmd_tokenizer_cache off: prompts are tokenized whole, same match
--- http_config eval
main::precise_upstream(tokcache => "off")
--- init
wait_fresh(2) or die "metrics never became fresh";
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{live} && $kv->{entries} >= $main::Blocks;
}) or die "pod 2 never indexed its blocks";
$pub->close;
--- request eval
[ (main::post($main::Request)) x 2, "GET /llmd/status" ]
--- response_headers_like eval
[ ({ "X-LLMD-Endpoint" => qr/^\Q$main::Pod2\E$/,
     "X-LLMD-Prefix-Match" => qr{^17/$main::RequestBlocks$} }) x 2, {} ]
--- response_body_like eval
[ (qr/^pod2/) x 2,
  qr/"tokenizer_cache":\{"size":0,"bytes":0,"lookups":0,"hits":0,/ ]
--- no_error_log
[error]



=== TEST 21: through the tokenizer's prefix cache every prompt still counts as many tokens as Hugging Face gives it (a hit that copied one id too few or too many would shift the count)
--- http_config eval
main::precise_upstream(interval => "60s", tokcache => "64k stride=1")
--- init
wait_fresh(2) or die "metrics never became fresh";
# live streams and no blocks: the precise index is used, nothing is cached
main::make_live();
my @texts = ($main::P, $main::Request, $main::Request);
my @want = map { scalar(@{ main::hf_ids($_->[0], $_->[1]) }) }
           (["t/060 prompt", $main::P], (["t/060 request", $main::Request]) x 2);
my ($sent, $expect) = (0, 0);
for my $k (0 .. $#texts) {
    my $r = Llmd::Util::http_request(method => "POST",
                                     path => "/v1/completions",
                                     body => completion($texts[$k]));
    $r->{status} == 200 or die "status $r->{status}";
    $expect += $want[$k];
    $sent = 0;
    $sent += $_->{inflight}{since_scrape}{sent_tokens}
        for @{ status_json()->{upstreams}[0]{endpoints} };
    $sent == $expect
        or die "after prompt " . ($k + 1) . ": sent tokens $sent, "
               . "Hugging Face's ids add up to $expect";
}
my $tc = status_json()->{upstreams}[0]{tokenizer_cache};
# the second prompt reuses the first's ids, the third its own
$tc->{hits} == 2 && $tc->{reused_ids} > 0
    or die "tokenizer cache: " . JSON::PP->new->canonical->encode($tc);
--- request
GET /llmd/status
--- response_body_like: "tokenizer_cache":\{"size":65536,"bytes":\d+,"lookups":3,"hits":2,
--- no_error_log
[error]



=== TEST 22: the prompt's text as the body scanner copies it out (escapes decoded) and a list of prompts or of token ids (parsed again by cJSON) match as the plain string does
--- http_config eval
main::precise_upstream()
--- init
wait_fresh(2) or die "metrics never became fresh";
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{live} && $kv->{entries} >= $main::Blocks;
}) or die "pod 2 never indexed its blocks";
$pub->close;
--- request eval
my $esc = completion($main::Request);
# "T", "q" and a space written as JSON escapes: the same text once decoded
$esc =~ s/"The quick brown/"\\u0054he \\u0071uick\\u0020brown/
    or die "no prompt in $esc";
[ "POST /v1/completions\n$esc",
  main::post($main::Request),
  main::post([ $main::Request, "a second prompt" ]),
  "POST /v1/completions\n"
  . completion(main::hf_ids("t/060 request", $main::Request)) ]
--- response_headers_like eval
[ ({ "X-LLMD-Endpoint" => qr/^\Q$main::Pod2\E$/,
     "X-LLMD-Prefix-Match" => qr{^17/$main::RequestBlocks$} }) x 4 ]
--- response_body_like eval
[ (qr/^pod2/) x 4 ]
--- no_error_log
[error]



=== TEST 23: precise chat: messages that are each a string role and content, read by the body scanner without a JSON tree, are rendered and tokenized as the same messages from cJSON's tree (chat_template_kwargs {} sends them that way), escaped or not, through the tokenizer's prefix cache
--- http_config eval
main::precise_upstream(interval => "60s", tokcache => "64k stride=1",
                       tok => $main::ChatTok)
--- init
wait_fresh(2) or die "metrics never became fresh";
main::make_live();
my $js = JSON::PP->new->canonical;
my @msgs = ({ role => "system", content => "Be brief. $main::P" },
            { role => "user", content => $main::Request });
my $plain = $js->encode({ model => "m", max_tokens => 4,
                          messages => \@msgs });
my $tree = $js->encode({ model => "m", max_tokens => 4, messages => \@msgs,
                         chat_template_kwargs => {} });
(my $esc = $plain) =~ s/"Be brief\. The quick/"B\\u0065 brief. \\u0054he quick/
    or die "no system message in $plain";
my ($sent, $dec) = (0, 0);
my @got;
for my $body ($tree, $plain, $esc, $plain) {
    my $r = Llmd::Util::http_request(method => "POST",
                                     path => "/v1/chat/completions",
                                     body => $body);
    $r->{status} == 200 or die "status $r->{status}";
    my $st = status_json()->{upstreams}[0];
    my $s = 0;
    $s += $_->{inflight}{since_scrape}{sent_tokens} for @{ $st->{endpoints} };
    my $d = $st->{kv_events}{precise_decisions};
    $d == $dec + 1 or die "request not scored precisely ($dec -> $d)";
    push @got, $s - $sent;
    ($sent, $dec) = ($s, $d);
}
$got[0] > 20 && !grep { $_ != $got[0] } @got
    or die "tokens of the rendered chat (cJSON's tree, scanned, escaped, "
           . "scanned again): @got";
--- request
GET /llmd/status
--- response_body_like: "tokenizer_cache":\{"size":65536,"bytes":\d+,"lookups":4,"hits":[1-9]
--- no_error_log
[error]



=== TEST 24: per-pod connect mode: a pod whose publisher is connected but has published nothing is scored by the KV index, a pod with no publisher (or whose publisher went away) by its approximate match
--- http_config eval
main::precise_upstream(events => "connect port=+70")
--- init
wait_fresh(2) or die "metrics never became fresh";
my $pod1 = "127.0.0.1:" . main::pod_port(1);
# pod 2 publishes (silently) at its port + 70; nothing listens for pod 1
my $pub = kv_publisher(bind => "tcp://127.0.0.1:" . (main::pod_port(2) + 70));
Llmd::Util::wait_until(10, sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{connected};
}) or die "pod 2's publisher is up, its subscriber never connected";
my $kv = main::kv_of();
die "pod 2 live without a batch" if $kv->{live} || $kv->{batches};
die "pod 1 has no publisher, yet counts as connected"
    if main::kv_of($pod1)->{connected};
# the precise decisions and the endpoints each scored approximately
my $counts = sub {
    my $kv = status_json()->{upstreams}[0]{kv_events};
    return ($kv->{precise_decisions}, $kv->{approximate_fallbacks});
};
my $post = sub {
    my $r = Llmd::Util::http_request(method => "POST",
                                     path => "/v1/completions",
                                     body => completion($main::P));
    $r->{status} == 200 or die "status $r->{status}";
};
my ($d0, $f0) = $counts->();
$post->() for 1 .. 3;
my ($d1, $f1) = $counts->();
$d1 - $d0 == 3 or die "precise decisions $d0 -> $d1, not 3 more";
$f1 - $f0 == 3
    or die "approximate fallbacks $f0 -> $f1: not pod 1 alone (3)";
# pod 2's publisher goes away: it is scored approximately again
$pub->close;
Llmd::Util::wait_until(10, sub { !main::kv_of()->{connected} })
    or die "pod 2 still counts as connected after its publisher closed";
$post->();
my ($d2, $f2) = $counts->();
$d2 - $d1 == 1 && $f2 - $f1 == 2
    or die "after the disconnect: decisions $d1 -> $d2, fallbacks "
           . "$f1 -> $f2 (not 1 and 2 more)";
--- request
GET /llmd/status
--- response_body_like: "kv":\{"live":false,"connected":false,



=== TEST 25: every pod's stream live: precise decisions never hash the approximate blocks, nothing is recorded in the approximate index (completions and chat)
--- http_config eval
main::precise_upstream(tok => $main::ChatTok)
--- init
wait_fresh(2) or die "metrics never became fresh";
main::make_live();
my $js = JSON::PP->new->canonical;
my $chat = $js->encode({ model => "m", max_tokens => 4, messages => [
    { role => "system", content => "Be brief. $main::P" },
    { role => "user", content => $main::Request } ] });
my $kv0 = status_json()->{upstreams}[0]{kv_events};
for my $r (["/v1/completions", completion($main::P)],
           ["/v1/completions", completion($main::Request)],
           ["/v1/chat/completions", $chat], ["/v1/chat/completions", $chat]) {
    my $res = Llmd::Util::http_request(method => "POST", path => $r->[0],
                                       body => $r->[1]);
    $res->{status} == 200 or die "$r->[0]: status $res->{status}";
}
my $st = status_json()->{upstreams}[0];
my $kv = $st->{kv_events};
$kv->{precise_decisions} - $kv0->{precise_decisions} == 4
    or die "not 4 precise decisions";
$kv->{approximate_fallbacks} == $kv0->{approximate_fallbacks}
    or die "a live pod was scored approximately";
$kv->{approximate_hashes} == $kv0->{approximate_hashes}
    or die "approximate blocks hashed: $kv0->{approximate_hashes} -> "
           . "$kv->{approximate_hashes}";
for my $e (@{ $st->{endpoints} }) {
    $e->{prefix_entries} == 0
        or die "$e->{name} (live) has $e->{prefix_entries} approximate "
               . "entries";
}
--- request
GET /llmd/status
--- response_body_like: "approximate_fallbacks":0,"approximate_hashes":0,



=== TEST 26: a pod without events (bind mode: it never published) is a fallback: requests routed to the live pod hash nothing; a request routed to the fallback hashes the approximate blocks and records them; from then on every decision hashes them once to read its match, and the same chat matches it whole; the live pod never gets approximate entries
--- http_config eval
main::precise_upstream(tok => $main::ChatTok)
--- init
wait_fresh(2) or die "metrics never became fresh";
my $pod1 = "127.0.0.1:" . main::pod_port(1);
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
main::publish_until($pub, kv_batch($main::Stored), sub {
    my $kv = main::kv_of() or return 0;
    return $kv->{entries} >= $main::Blocks && $kv->{live};
}) or die "pod 2 never indexed its blocks";
$pub->close;
my $js = JSON::PP->new->canonical;
my $chat = $js->encode({ model => "m", max_tokens => 4, messages => [
    { role => "system", content => "Be brief. $main::P" },
    { role => "user", content => $main::Request } ] });
my $state = sub {
    my $st = status_json()->{upstreams}[0];
    my %e = map { $_->{name} => $_ } @{ $st->{endpoints} };
    return ($st->{kv_events}{approximate_hashes},
            $e{$pod1}{prefix_entries}, $e{$main::Pod2}{prefix_entries});
};
my $post = sub {
    my $r = Llmd::Util::http_request(method => "POST",
                                     path => "/v1/chat/completions",
                                     body => $chat);
    $r->{status} == 200 or die "status $r->{status}";
    return $r->{headers};
};
my ($h, $e1, $e2) = $state->();
$h == 0 && $e1 == 0 && $e2 == 0 or die "not a fresh start: $h $e1 $e2";
# the prompt pod 2 reported goes to pod 2 (17/17): no hashing, no record
for (1 .. 3) {
    my $r = Llmd::Util::http_request(method => "POST",
                                     path => "/v1/completions",
                                     body => completion($main::P));
    $r->{headers}{'x-llmd-endpoint'} eq $main::Pod2
        or die "the reported prompt went to $r->{headers}{'x-llmd-endpoint'}";
}
($h, $e1, $e2) = $state->();
$h == 0 && $e1 == 0 && $e2 == 0
    or die "routed to the live pod: hashed $h times, approximate entries "
           . "$e1 and $e2 (not 0)";
my $picked1 = 0;
for my $i (1 .. 40) {
    my $hd = $post->();
    my ($h2, $f1, $f2) = $state->();
    my $to1 = $hd->{'x-llmd-endpoint'} eq $pod1;
    $f2 == 0 or die "the live pod got $f2 approximate entries";
    # hashed to read pod 1's match once it holds entries, or to record
    # the blocks when the request went to pod 1; else not at all
    my $want = ($e1 > 0 || $to1) ? 1 : 0;
    $h2 - $h == $want
        or die "request $i (to $hd->{'x-llmd-endpoint'}, pod 1 held $e1 "
               . "entries): hashed $h -> $h2, not $want more";
    !$to1 || $f1 > 0 or die "routed to pod 1, nothing recorded";
    $to1 || $f1 == $e1 or die "routed to pod 2, pod 1's entries changed";
    ($h, $e1) = ($h2, $f1);
    $picked1 = $i, last if $to1;
}
$picked1 or die "pod 1 was never picked in 40 requests";
# the same chat again: pod 1's approximate match is the whole prompt
my $hd = $post->();
$hd->{'x-llmd-endpoint'} eq $pod1
    && $hd->{'x-llmd-prefix-match'} =~ m{^(\d+)/(\d+)$} && $1 == $2 && $1 > 0
    or die "again: $hd->{'x-llmd-endpoint'} $hd->{'x-llmd-prefix-match'}";
my ($h3) = $state->();
$h3 - $h == 1 or die "again: hashed $h -> $h3, not once";
--- request
GET /llmd/status
--- response_body_like: "approximate_fallbacks":[1-9]
