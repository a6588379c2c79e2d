# Precise routing end to end: two simulated vLLM pods (build/bin/vllm-sim)
# with prefix caching publish real KV events; once a prompt was served by
# one pod, requests sharing its prefix follow it although both pods are
# equally idle, and the pod's own prefix cache confirms the hits.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Llmd::Fixtures;
use Llmd::Ports qw(port);
use Llmd::Proc;
use Llmd::Util;
use Llmd::KV;

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

our $Tok = repo_root() . "/t/data/tokenizer-tiny.json";
our $Epp = repo_root() . "/t/data/epp-precise-sim.yaml";
our $SimPort = port(30);         # pods on +30, +31
our $KvPort = port(40);
our @Pods = map { "127.0.0.1:" . ($SimPort + $_) } 0, 1;

# the prompt: 20 blocks of 16 tokens and more (tiny tokenizer: ~1 per byte)
our $P = join " ", map { "sentence $_ about caching prompts" } 1 .. 12;

# nginx binds the KV-event port: it must be free as well
Llmd::Ports::assert_free($KvPort);
our $SimPid = Llmd::Proc::sim(
    args => [ "--pods", 2, "--port", $SimPort, "--model", "m",
              "--block-size", 16, "--time-scale", 20, "--tokenizer", $Tok,
              "--kv-events", "tcp://127.0.0.1:$KvPort", "--quiet" ],
    ports => [ $SimPort, $SimPort + 1 ],
    health => [ map { "127.0.0.1:" . ($SimPort + $_) } 0, 1 ]);

our $Front = <<'EOF';
    location /v1/ {
        proxy_pass http://vllm;
        add_header X-LLMD-Endpoint $llmd_endpoint always;
        add_header X-LLMD-Prefix-Match $llmd_prefix_match always;
    }
    location = /llmd/status { llmd_status; }
EOF

our $Upstream = <<"EOF";
upstream vllm {
    llmd_balancer config=$Epp;
    llmd_tokenizer $Tok;
    llmd_kv_events bind tcp://127.0.0.1:$KvPort;
    llmd_kv_speculative 0;
    server $Pods[0];
    server $Pods[1];
}
EOF

# conf-examples/epp-sticky-precise.yaml with the tests' block size; one
# scrape only, so the counts since it cover the whole test
our $StickyUpstream = <<"EOF";
upstream vllm {
    llmd_balancer config=@{[ repo_root() ]}/t/data/epp-sticky-precise-sim.yaml;
    llmd_tokenizer $Tok;
    llmd_kv_events bind tcp://127.0.0.1:$KvPort;
    llmd_metrics_interval 60s;
    server $Pods[0];
    server $Pods[1];
}
EOF

# The since-scrape prompt tokens nginx counted for endpoint $name.
sub sent_tokens {
    my ($name) = @_;
    for my $e (@{ status_json()->{upstreams}[0]{endpoints} }) {
        return $e->{inflight}{since_scrape}{sent_tokens}
            if $e->{name} eq $name;
    }
    die "no endpoint $name in llmd_status";
}

sub pod_hits {
    my ($port) = @_;
    my $r = Llmd::Util::http_request(method => "GET", port => $port,
                                     path => "/metrics");
    return $r->{body} =~ /^vllm:prefix_cache_hits_total\{[^}]*\} (\S+)/m
           ? $1 : 0;
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

=== TEST 1: the pod that served a prompt gets the requests sharing its prefix
--- http_config eval
$main::Upstream
--- init
wait_fresh(2) or die "metrics never became fresh";
# the first request goes anywhere; its pod then publishes BlockStored. A
# publisher drops what it sends before its connection is up, so a prompt
# whose events were lost is replaced by a fresh one.
my $indexed;
for my $attempt (1 .. 5) {
    $main::P = "Attempt $attempt. $main::P";
    my $r = Llmd::Util::http_request(method => "POST",
        path => "/v1/completions",
        body => main::completion($main::P, model => "m"),
        headers => { "Content-Type" => "application/json" });
    $r && $r->{status} == 200 or die "first request failed";
    $main::First = $r->{headers}{"x-llmd-endpoint"}
        or die "no endpoint header";
    $indexed = Llmd::Util::wait_until(2, sub {
        my $kv = kv_status_endpoint(status_json(), $main::First) or return 0;
        return $kv->{entries} >= 20;
    });
    last if $indexed;
}
$indexed or die "the serving pod's KV events never reached the index";
($main::Port = $main::First) =~ s/.*://;
$main::Hits = main::pod_hits($main::Port);
# both pods idle: the prefix alone decides
for my $i (1 .. 4) {
    my $r = Llmd::Util::http_request(method => "POST",
        path => "/v1/completions",
        body => main::completion("$main::P and question $i", model => "m"),
        headers => { "Content-Type" => "application/json" });
    my $ep = $r->{headers}{"x-llmd-endpoint"} // "none";
    my $m = $r->{headers}{"x-llmd-prefix-match"} // "none";
    $ep eq $main::First
        or die "request $i went to $ep, not to $main::First (match $m)";
    $m =~ m{^(\d+)/\d+$} && $1 >= 20
        or die "request $i matched only $m blocks on $ep";
}
--- request
GET /llmd/status
--- response_body_like eval
qr/"prefix_scorer":"precise".*"precise_decisions":[5-9]/s
--- no_error_log
[error]



=== TEST 2: the pod's own prefix cache saw the hits the index predicted
--- http_config eval
$main::Upstream
--- init
# TEST 1 ran against the same simulator: the followed pod reports hits
main::pod_hits($main::Port) > $main::Hits
    or die "pod $main::First reported no prefix-cache hits";
--- request
GET /llmd/status
--- response_body_like eval
qr/"prefix_scorer":"precise"/



=== TEST 3: sticky until saturated with the precise producer (epp-sticky-precise.yaml): a sibling stays on the pod that holds its prefix, and the in-flight load counts exactly the prompt tokens that pod computes
--- http_config eval
$main::StickyUpstream
--- init
wait_fresh(2) or die "metrics never became fresh";
# a prompt neither pod has seen (the pods keep TEST 1's blocks)
my $q = join " ", map { "line $_ of a sticky system prompt" } 1 .. 14;
my ($first, $indexed);
for my $attempt (1 .. 5) {
    $q = "Sticky attempt $attempt. $q";
    my $r = Llmd::Util::http_request(method => "POST",
        path => "/v1/completions", body => main::completion($q, model => "m"),
        headers => { "Content-Type" => "application/json" });
    $r && $r->{status} == 200 or die "first request failed";
    $first = $r->{headers}{"x-llmd-endpoint"} or die "no endpoint header";
    # the pod's own events, not the speculative entries of the pick
    $indexed = Llmd::Util::wait_until(2, sub {
        my $kv = kv_status_endpoint(status_json(), $first) or return 0;
        return $kv->{live} && $kv->{blocks_stored} >= 20;
    });
    last if $indexed;
}
$indexed or die "the serving pod's KV events never reached the index";
my $before = main::sent_tokens($first);
my $r = Llmd::Util::http_request(method => "POST",
    path => "/v1/completions",
    body => main::completion("$q and a question of its own", model => "m"),
    headers => { "Content-Type" => "application/json" });
$r && $r->{status} == 200 or die "sibling failed";
my $ep = $r->{headers}{"x-llmd-endpoint"} // "none";
my $m = $r->{headers}{"x-llmd-prefix-match"} // "none";
$ep eq $first or die "the sibling went to $ep, not to $first (match $m)";
my $u = JSON::PP::decode_json($r->{body})->{usage};
my $cached = $u->{prompt_tokens_details}{cached_tokens};
$cached > 0 or die "the pod had no prefix of the sibling cached";
my $counted = main::sent_tokens($first) - $before;
$counted == $u->{prompt_tokens} - $cached
    or die "nginx counted $counted uncached prompt tokens for the sibling;"
           . " the pod computed $u->{prompt_tokens} - $cached cached"
           . " (match $m)";
--- request
GET /llmd/status
--- response_body_like eval
qr/epp-sticky-precise-sim\.yaml.*"prefix_scorer":"precise"/s
--- no_error_log
[error]
