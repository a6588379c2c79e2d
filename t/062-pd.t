# Prefill/decode disaggregation and llm-d's filters, handlers and scorers in
# nginx (docs/disaggregation.md, docs/scheduling.md): fake pods (nginx
# servers) labelled with llmd_server_labels answer with their name and the
# x-prefiller-host-port they were sent; llm-d's configs load unchanged;
# at the end a P/D request goes client -> nginx -> decode pod -> prefill
# pod through vllm-sim.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use MIME::Base64 qw(encode_base64);
use Llmd::Fixtures;
use Llmd::Ports qw(port);
use Llmd::Proc;
use Llmd::Util;
use JSON::PP ();

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

our $Front = <<'EOF';
    location /v1/ {
        proxy_pass http://vllm;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        add_header X-LLMD-Endpoint $llmd_endpoint always;
        add_header X-LLMD-Prefill $llmd_prefill_endpoint always;
        add_header X-LLMD-Profile $llmd_profile always;
        add_header X-Upstreams $upstream_addr always;
    }
    location = /llmd/status { llmd_status; }
    location = /llmd/metrics { llmd_status prometheus; }
EOF

our $Long = prompt_of("pd", 1024);
our ($P1, $P2, $P3) = map { "127.0.0.1:" . pod_port($_) } 1 .. 3;

# A fake pod that answers "podN pf=<x-prefiller-host-port>".
sub echo_pod {
    my ($n, %o) = @_;
    return pod($n, body => "pod$n pf=\$http_x_prefiller_host_port\\n", %o);
}

sub echo_pods { return join "", map { echo_pod($_) } @_; }

# llmd_server_labels lines: { N => "k=v", ... }
sub labels {
    my (%l) = @_;
    return join "", map { "    llmd_server_labels 127.0.0.1:"
                          . pod_port($_) . " $l{$_};\n" } sort keys %l;
}

# The roles most blocks use: pod 1 prefill, pod 2 decode, pod 3 unlabelled.
sub pd_upstream {
    my ($config, %o) = @_;
    return upstream([1 .. 3], balancer => "config=$config",
                    extra => labels(1 => "llm-d.ai/role=prefill",
                                    2 => "llm-d.ai/role=decode"), %o);
}

sub post { return "POST /v1/completions\n" . $_[0]; }
sub posts { my ($n, $body) = @_; return [ map { post($body) } 1 .. $n ]; }
sub distinct {
    my ($n, $tag) = @_;
    return [ map { post(completion(prompt_of("$tag-$_"))) } 1 .. $n ];
}

# A /metrics text (nginx-escaped, as Llmd::Fixtures::pod writes it) with
# vllm:lora_requests_info.
sub lora_metrics {
    my ($running, $waiting, $max) = @_;
    return join "",
      "vllm:num_requests_running{model_name=\\\"m\\\"} 0\\n",
      "vllm:num_requests_waiting{model_name=\\\"m\\\"} 0\\n",
      "vllm:kv_cache_usage_perc{model_name=\\\"m\\\"} 0\\n",
      "vllm:lora_requests_info{max_lora=\\\"$max\\\",",
      "running_lora_adapters=\\\"$running\\\",",
      "waiting_lora_adapters=\\\"$waiting\\\"} 1.7e+09\\n";
}

sub token { return encode_base64($_[0], ""); }

# vllm-sim: pod 0 prefill, pods 1 and 2 decode (+30 .. +32).
our $SimPort = port(30);
our @Sim = map { "127.0.0.1:" . ($SimPort + $_) } 0 .. 2;
our $SimPid = Llmd::Proc::sim(
    args => [ "--pods", 3, "--port", $SimPort, "--model", "m",
              "--roles", "prefill,decode,decode", "--block-size", 16,
              "--time-scale", 20, "--quiet" ],
    ports => [ $SimPort .. $SimPort + 2 ],
    health => \@Sim);

sub sim_pd {
    my ($addr) = @_;
    my $r = Llmd::Util::http_request(method => "GET", path => "/sim/state",
        addr => (split /:/, $addr)[0], port => (split /:/, $addr)[1]);
    return (eval { JSON::PP->new->decode($r->{body}) } || {})->{pd} || {};
}

our $SimUpstream = "upstream vllm {\n"
    . "    llmd_balancer config=$ENV{TEST_NGINX_REPO}/t/data/epp-pd-guide.yaml;\n"
    . "    llmd_metrics_interval 50ms;\n"
    . join("", map { "    server $_;\n" } @Sim)
    . "    llmd_server_labels $Sim[0] llm-d.ai/role=prefill;\n"
    . "    llmd_server_labels $Sim[1] llm-d.ai/role=decode;\n"
    . "    llmd_server_labels $Sim[2] llm-d.ai/role=decode;\n"
    . "}\n";

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("main_config", "load_module $ENV{TEST_NGINX_LLMD_SO};")
        unless defined $block->main_config;
    $block->set_value("config", $Front) unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the seed's P/D config (pd-profile-handler, prefill-header-handler, decode-filter, prefill-filter) loads unchanged: decode on decode or unlabelled pods, prefill on the prefill pod, named in x-prefiller-host-port; a client's header is replaced
--- http_config eval
main::echo_pods(1 .. 3)
. main::pd_upstream("$ENV{TEST_NGINX_REPO}/t/data/epp-pd-seed.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
--- more_headers
x-prefiller-host-port: 10.9.9.9:1
--- request eval
[ @{ main::distinct(8, "seed") }, "GET /llmd/status" ]
--- response_body_like eval
[ (qr/^pod[23] pf=\Q$main::P1\E$/) x 8,
  qr/"labels":\{"llm-d\.ai\/role":"prefill"\}.*"labels":\{"llm-d\.ai\/role":"decode"\}.*"labels":\{\}/s ]
--- response_headers_like eval
[ ({ "X-LLMD-Prefill" => qr/^\Q$main::P1\E$/,
     "X-LLMD-Profile" => qr/^decode$/,
     "X-LLMD-Endpoint" => qr/^(\Q$main::P2\E|\Q$main::P3\E)$/ }) x 8, {} ]
--- no_error_log
[error]



=== TEST 2: pd-profile-handler threshold (llm-d <= v0.4): prefill when the uncached prompt is at least `threshold` bytes; a short prompt and a cached one stay on the decode pod, without the client's header
--- http_config eval
main::echo_pods(1 .. 3)
. main::pd_upstream("$ENV{TEST_NGINX_REPO}/t/data/epp-pd-threshold.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
--- more_headers
X-Prefiller-Host-Port: 10.9.9.9:1
--- request eval
[ main::post(main::completion("short")),
  main::post(main::completion($main::Long)),
  main::post(main::completion($main::Long)) ]
--- response_body_like eval
[ qr/^pod[23] pf=$/, qr/^pod[23] pf=\Q$main::P1\E$/, qr/^pod[23] pf=$/ ]
--- response_headers_like eval
[ { "X-LLMD-Prefill" => qr/^$/ }, { "X-LLMD-Prefill" => qr/^\Q$main::P1\E$/ },
  { "X-LLMD-Prefill" => qr/^$/ } ]



=== TEST 3: llm-d's P/D guide config (apiVersion llm-d.ai/v1alpha1, disagg-profile-handler, prefix-based-pd-decider nonCachedTokens 16) loads unchanged: a long new prompt is disaggregated, a short one and a cached one are not
--- http_config eval
main::echo_pods(1 .. 3)
. main::pd_upstream("$ENV{TEST_NGINX_REPO}/t/data/epp-pd-guide.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
[ main::post(main::completion("hi there")),
  main::post(main::completion($main::Long)),
  main::post(main::completion($main::Long)),
  main::post(main::completion($main::Long . " and a new question of enough tokens to prefill again, more than sixteen of them at least")),
  "GET /llmd/metrics" ]
--- response_body_like eval
[ qr/^pod[23] pf=$/, qr/^pod[23] pf=\Q$main::P1\E$/, qr/^pod[23] pf=$/,
  qr/^pod[23] pf=\Q$main::P1\E$/,
  main::prom_has(qr/llmd_pd_decisions_total\{upstream="vllm"\} 2/) ]
--- no_error_log
[error]



=== TEST 4: disagg-profile-handler with always-disagg-pd-decider: every request, cached or not, is disaggregated; retries of the decode leg take the next decode pod, the prefill pod stays
--- user_files
>>> always.yaml
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: decode-filter
- type: prefill-filter
- type: queue-scorer
- type: always-disagg-pd-decider
- type: disagg-profile-handler
  parameters:
    deciders:
      prefill: always-disagg-pd-decider
schedulingProfiles:
- name: prefill
  plugins:
  - pluginRef: prefill-filter
  - pluginRef: queue-scorer
- name: decode
  plugins:
  - pluginRef: decode-filter
  - pluginRef: queue-scorer
--- http_config eval
main::echo_pods(1 .. 2)
. main::pod(3, body => "broken\\n", extra => "location /v1/ { return 502; }")
. main::pd_upstream("../html/always.yaml",
      extra => main::labels(1 => "llm-d.ai/role=prefill",
                            2 => "llm-d.ai/role=decode",
                            3 => "llm-d.ai/role=decode"))
--- config eval
$main::Front =~ s/proxy_pass http:\/\/vllm;/proxy_pass http:\/\/vllm;\n        proxy_next_upstream error timeout http_502 non_idempotent;/r
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
[ @{ main::posts(4, main::completion($main::Long)) } ]
--- response_body_like eval
[ (qr/^pod2 pf=\Q$main::P1\E$/) x 4 ]
--- response_headers_like eval
[ ({ "X-LLMD-Prefill" => qr/^\Q$main::P1\E$/,
     "X-Upstreams" => qr/^(\Q$main::P3\E, )?\Q$main::P2\E$/ }) x 4 ]



=== TEST 5: llm-d's P/D config with custom labels (label-selector-filter matchExpressions In, prefix-based-pd-decider nonCachedTokens 8) loads unchanged
--- http_config eval
main::echo_pods(1 .. 3)
. upstream([1 .. 3], balancer => "config=$ENV{TEST_NGINX_REPO}/t/data/epp-pd-labels.yaml",
           extra => main::labels(1 => "role=prefill", 2 => "role=decode"))
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
[ @{ main::distinct(6, "lbl") } ]
--- response_body_like eval
[ (qr/^pod2 pf=\Q$main::P1\E$/) x 6 ]



=== TEST 6: label-selector-filter matchLabels keeps the matching pods only
--- user_files
>>> sel.yaml
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: label-selector-filter
  parameters:
    matchLabels:
      llm-d.ai/role: decode
- type: queue-scorer
--- http_config eval
main::echo_pods(1 .. 3)
. main::pd_upstream("../html/sel.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
main::distinct(8, "ml")
--- response_body_like eval
[ (qr/^pod2 pf=$/) x 8 ]



=== TEST 7: label-selector-filter matchExpressions NotIn also keeps pods without the label
--- user_files
>>> notin.yaml
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: label-selector-filter
  parameters:
    matchExpressions:
    - key: llm-d.ai/role
      operator: NotIn
      values: [prefill]
- type: random-picker
--- http_config eval
main::echo_pods(1 .. 3)
. main::pd_upstream("../html/notin.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
[ @{ main::distinct(12, "ni") }, "GET /llmd/status" ]
--- response_body_like eval
[ (qr/^pod[23] pf=$/) x 12, qr/"picks":0,.*"picks":[1-9]\d*,.*"picks":[1-9]\d*,/s ]



=== TEST 8: by-label (deprecated): validValues and allowsNoLabel
--- user_files
>>> bylabel.yaml
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: by-label
  parameters:
    label: llm-d.ai/role
    validValues: [prefill]
    allowsNoLabel: true
- type: random-picker
--- http_config eval
main::echo_pods(1 .. 3)
. main::pd_upstream("../html/bylabel.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
[ @{ main::distinct(12, "bl") }, "GET /llmd/status" ]
--- response_body_like eval
[ (qr/^pod[13] pf=$/) x 12, qr/"picks":[1-9]\d*,.*"picks":0,.*"picks":[1-9]\d*,/s ]



=== TEST 9: by-label-selector (deprecated) is label-selector-filter
--- user_files
>>> bls.yaml
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: by-label-selector
  parameters:
    matchLabels:
      llm-d.ai/role: prefill
--- http_config eval
main::echo_pods(1 .. 3)
. main::pd_upstream("../html/bls.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
main::distinct(6, "bls")
--- response_body_like eval
[ (qr/^pod1 pf=$/) x 6 ]



=== TEST 10: a filter that leaves no pod: 503 with an OpenAI error
--- user_files
>>> none.yaml
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: label-selector-filter
  parameters:
    matchLabels:
      llm-d.ai/role: encode
--- http_config eval
main::echo_pods(1 .. 3)
. main::pd_upstream("../html/none.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
main::post(main::completion("x"))
--- error_code: 503
--- response_body_like eval
qr/"type":"ServiceUnavailableError"/



=== TEST 11: session-affinity-scorer: the answer names the pod in x-session-token (base64 of its ip:port); a request carrying it returns to that pod
--- user_files
>>> session.yaml
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: session-affinity-scorer
- type: weighted-random-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: session-affinity-scorer
    weight: 10
  - pluginRef: weighted-random-picker
--- http_config eval
main::echo_pods(1 .. 3) . upstream([1 .. 3], balancer => "config=../html/session.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
--- more_headers eval
"x-session-token: " . main::token($main::P3)
--- request eval
main::distinct(8, "sess")
--- response_body_like eval
[ (qr/^pod3 /) x 8 ]
--- response_headers_like eval
[ ({ "x-session-token" => qr/^\Q${\ main::token($main::P3)}\E$/ }) x 8 ]



=== TEST 12: session-affinity-scorer: without a token, or with one naming no pod, the answer names the pod that served in the configured header
--- user_files
>>> session.yaml
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: session-affinity-scorer
  parameters:
    encodedEndpointHeaderConfig:
      header: X-My-Session
--- http_config eval
main::echo_pods(1 .. 3) . upstream([1 .. 3], balancer => "config=../html/session.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
for my $i (1 .. 6) {
    my $r = Llmd::Util::http_request(method => "POST", path => "/v1/completions",
        headers => $i % 2 ? { "x-my-session" => main::token("10.1.1.1:80") } : {},
        body => main::completion(main::prompt_of("nosess-$i")));
    die "status $r->{status}" unless $r->{status} == 200;
    my $ep = $r->{headers}{"x-llmd-endpoint"};
    my $tok = $r->{headers}{"x-my-session"} // "(none)";
    die "request $i served by $ep names $tok"
        unless $tok eq main::token($ep);
}
--- request eval
main::post(main::completion("x"))
--- response_headers_like eval
{ "X-My-Session" => qr/^[A-Za-z0-9+\/]+=*$/ }



=== TEST 13: lora-affinity-scorer: the pod running the request's adapter, then one with room to load it (vllm:lora_requests_info scraped)
--- user_files
>>> lora.yaml
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: lora-affinity-scorer
--- http_config eval
main::echo_pod(1, metrics => main::lora_metrics("tweet-lora", "", 1))
. main::echo_pod(2, metrics => main::lora_metrics("sql-lora", "", 1))
. main::echo_pod(3, metrics => main::lora_metrics("a,b", "", 2))
. upstream([1 .. 3], balancer => "config=../html/lora.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
[ (map { main::post(main::completion(main::prompt_of("l$_"), model => "sql-lora")) } 1 .. 4),
  (map { main::post(main::completion(main::prompt_of("t$_"), model => "tweet-lora")) } 1 .. 4) ]
--- response_body_like eval
[ (qr/^pod2 /) x 4, (qr/^pod1 /) x 4 ]



=== TEST 14: no-hit-lru-scorer: cold requests go to the least recently used pod for cold requests, in turn
--- user_files
>>> nohit.yaml
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
- type: no-hit-lru-scorer
  parameters:
    lruSize: 16
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-scorer
    weight: 0
  - pluginRef: no-hit-lru-scorer
--- http_config eval
main::echo_pods(1 .. 3) . upstream([1 .. 3], balancer => "config=../html/nohit.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
my @seen;
for my $i (1 .. 9) {
    my $r = Llmd::Util::http_request(method => "POST", path => "/v1/completions",
        body => main::completion(main::prompt_of("cold-$i")));
    die "status $r->{status}" unless $r->{status} == 200;
    push @seen, $r->{headers}{"x-llmd-endpoint"};
}
my %first = map { $_ => 1 } @seen[0 .. 2];
die "first three cold requests not on three pods: @seen" unless keys %first == 3;
for my $i (3 .. 8) {
    die "cold request $i not in turn: @seen" unless $seen[$i] eq $seen[$i - 3];
}
--- request eval
main::post(main::completion(main::prompt_of("cold-1")))
--- response_body_like
^pod\d pf=$



=== TEST 15: running-requests-size-scorer: the pod with the fewest running requests
--- user_files
>>> running.yaml
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: running-requests-size-scorer
--- http_config eval
main::echo_pod(1, running => 7) . main::echo_pod(2, running => 0)
. main::echo_pod(3, running => 3)
. upstream([1 .. 3], balancer => "config=../html/running.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
main::distinct(6, "run")
--- response_body_like eval
[ (qr/^pod2 /) x 6 ]



=== TEST 16: llmd_server_labels naming no server stops nginx
--- http_config eval
main::echo_pods(1) . upstream([1], extra => "    llmd_server_labels 127.0.0.1:1 llm-d.ai/role=decode;\n")
--- must_die
--- error_log eval
qr/\[emerg\] .*upstream "vllm": llmd_server_labels "127\.0\.0\.1:1" \(line \d+\) names no server/



=== TEST 17: llmd_server_labels with an invalid label stops nginx
--- http_config eval
main::echo_pods(1) . upstream([1], extra => "    llmd_server_labels 127.0.0.1:" . main::pod_port(1) . " llm-d.ai/role=de*code;\n")
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid labels for "127\.0\.0\.1:\d+": label value "de\*code"/



=== TEST 18: end to end through vllm-sim (llm-d's P/D guide config): client -> nginx -> decode pod -> prefill pod; the prefill pod served the prefill leg, the decode pod's sidecar sent it, the answer is the decode pod's
--- http_config eval
$main::SimUpstream
--- init
wait_fresh(3) or die "metrics never became fresh";
my %before = map { $_ => main::sim_pd($_) } @main::Sim;
my $r = Llmd::Util::http_request(method => "POST", path => "/v1/completions",
    body => main::completion($main::Long, fields => { max_tokens => 8,
                                                    ignore_eos => JSON::PP::true }),
    timeout => 20);
die "status $r->{status}: $r->{body}" unless $r->{status} == 200;
my $ep = $r->{headers}{"x-llmd-endpoint"};
my $pf = $r->{headers}{"x-llmd-prefill"} // "";
die "prefill pod $pf" unless $pf eq $main::Sim[0];
die "decode pod $ep" unless $ep eq $main::Sim[1] || $ep eq $main::Sim[2];
my $body = JSON::PP->new->decode($r->{body});
die "answer: $r->{body}"
    unless $body->{object} eq "text_completion"
        && $body->{usage}{completion_tokens} == 8;
my %after = map { $_ => main::sim_pd($_) } @main::Sim;
die "prefill legs on the prefill pod: "
    . ($after{$pf}{prefill_legs} - $before{$pf}{prefill_legs})
    unless $after{$pf}{prefill_legs} - $before{$pf}{prefill_legs} == 1;
die "sidecar prefills on the decode pod"
    unless $after{$ep}{sidecar_prefills} - $before{$ep}{sidecar_prefills} == 1
        && $after{$ep}{remote_prefills} - $before{$ep}{remote_prefills} == 1;
my ($other) = grep { $_ ne $ep && $_ ne $pf } @main::Sim;
die "the other decode pod took part"
    unless ($after{$other}{sidecar_prefills} // 0)
           == ($before{$other}{sidecar_prefills} // 0);
# the same prompt again: cached on the decode pod, no prefill leg
my $r2 = Llmd::Util::http_request(method => "POST", path => "/v1/completions",
    body => main::completion($main::Long), timeout => 20);
die "second: status $r2->{status}" unless $r2->{status} == 200;
die "second request disaggregated"
    if ($r2->{headers}{"x-llmd-prefill"} // "") ne "";
die "second request not on the decode pod $ep"
    unless $r2->{headers}{"x-llmd-endpoint"} eq $ep;
--- request eval
"GET /llmd/status"
--- response_body_like eval
qr/"pd_decisions":1,/
