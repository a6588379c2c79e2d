# Scheduling decisions of llmd_balancer against fake pods (single process:
# the scrapers run inside it, as with master_process off).
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Llmd::Fixtures;
use Llmd::Ports qw(port);
use Llmd::Util;

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

our $Front = <<'EOF';
    location /v1/ {
        proxy_pass http://vllm;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffering off;
        add_header X-LLMD-Endpoint $llmd_endpoint always;
        add_header X-LLMD-Profile $llmd_profile always;
        add_header X-LLMD-Prefix-Match $llmd_prefix_match always;
        add_header X-LLMD-Scores $llmd_scores always;
        add_header X-LLMD-Decision-Us $llmd_decision_us always;
        add_header X-Upstreams $upstream_addr always;
    }
    location = /llmd/status { llmd_status; }
    location = /llmd/metrics { llmd_status prometheus; }
EOF

our $Long = prompt_of("alpha", 1024);

# A server that never answers (max_conns, llmd_metrics_timeout) and a file
# that makes a flaky pod's /metrics fail while it exists.
our $Silent = port(40);
our $Down = "/tmp/llmd-010-down-$$";
END { unlink $Down }

# Starts a request on its own connection and leaves it in flight; returns
# the socket (the request ends when it is closed).
sub start_request {
    my ($body) = @_;
    require IO::Socket::INET;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
        PeerPort => Llmd::Util::server_port(), Timeout => 5)
        or die "connect: $!";
    print $s "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "
           . length($body) . "\r\n\r\n$body";
    return $s;
}

# One request; returns the endpoint that served it (X-LLMD-Endpoint).
sub served_by {
    my ($text) = @_;
    my $r = Llmd::Util::http_request(method => "POST",
        path => "/v1/completions", body => completion($text));
    die "status $r->{status}: $r->{body}" unless $r->{status} == 200;
    return $r->{headers}{"x-llmd-endpoint"};
}

sub post { return "POST /v1/completions\n" . $_[0]; }
sub posts { my ($n, $body) = @_; return [ map { post($body) } 1 .. $n ]; }

add_block_preprocessor(sub {
    my $block = shift;
    if (!defined $block->main_config) {
        $block->set_value("main_config",
                          "load_module $ENV{TEST_NGINX_LLMD_SO};");
    }
    if (!defined $block->config) {
        $block->set_value("config", $Front);
    }
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: requests sharing a long prefix stick to one endpoint
--- http_config eval
pods(1 .. 4) . upstream([1 .. 4])
--- init
wait_fresh(4) or die "metrics never became fresh";
--- request eval
[ @{ main::posts(6, main::completion($main::Long)) },
  "GET /llmd/status" ]
--- response_body_like eval
[ (qr/^pod\d/) x 6, qr/"picks":6,/ ]
--- response_headers_like eval
[ { "X-LLMD-Prefix-Match" => qr{^0/16$} },
  ({ "X-LLMD-Prefix-Match" => qr{^16/16$} }) x 5, {} ]
--- no_error_log
[error]



=== TEST 2: distinct prefixes spread over the endpoints
--- http_config eval
pods(1 .. 4) . upstream([1 .. 4])
--- init
wait_fresh(4) or die "metrics never became fresh";
--- request eval
[ (map { main::post(main::completion(main::prompt_of("distinct-$_")))
       } 1 .. 12),
  "GET /llmd/status" ]
--- response_body_like eval
[ (qr/^pod\d/) x 12,
  qr/"picks":[1-9]\d*,.*"picks":[1-9]\d*,/s ]
--- no_error_log
[error]



=== TEST 3: the queue scorer steers away from a pod with a long queue
--- http_config eval
pod(1, waiting => 9) . pod(2, waiting => 0)
. upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-load.yaml")
--- init
wait_fresh(2) or die "metrics never became fresh";
--- request eval
main::posts(5, main::completion(main::prompt_of("q")))
--- response_body_like eval
[ (qr/^pod2 /) x 5 ]
--- response_headers_like eval
[ ({ "X-LLMD-Endpoint" => qr/^\Q$ENV{TEST_NGINX_POD2}\E$/,
     "X-LLMD-Scores" => qr/^\Q$ENV{TEST_NGINX_POD2}\E=2\.000 \Q$ENV{TEST_NGINX_POD1}\E=1\.000$/ }) x 5 ]



=== TEST 4: the KV-cache scorer steers away from a full cache
--- http_config eval
pod(1, kv => 0.95) . pod(2, kv => 0.10)
. upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-load.yaml")
--- init
wait_fresh(2) or die "metrics never became fresh";
--- request eval
main::posts(5, main::completion(main::prompt_of("kv")))
--- response_body_like eval
[ (qr/^pod2 /) x 5 ]



=== TEST 5: weights from YAML decide (queue-heavy profile picks pod1)
--- user_files
>>> queue-heavy.yaml
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-scorer
- type: max-score-picker
schedulingProfiles:
- name: queue-heavy
  plugins:
  - pluginRef: queue-scorer
    weight: 3
  - pluginRef: kv-cache-scorer
    weight: 1
--- http_config eval
pod(1, waiting => 0, kv => 0.9) . pod(2, waiting => 5, kv => 0.1)
. upstream([1, 2], balancer => "config=../html/queue-heavy.yaml")
--- init
wait_fresh(2) or die "metrics never became fresh";
--- request eval
main::posts(3, main::completion(main::prompt_of("w")))
--- response_body_like eval
[ (qr/^pod1 /) x 3 ]
--- response_headers_like eval
[ ({ "X-LLMD-Profile" => qr/^queue-heavy$/ }) x 3 ]



=== TEST 6: weights from YAML decide (KV-heavy profile picks pod2)
--- user_files
>>> kv-heavy.yaml
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-scorer
- type: max-score-picker
schedulingProfiles:
- name: kv-heavy
  plugins:
  - pluginRef: queue-scorer
    weight: 1
  - pluginRef: kv-cache-scorer
    weight: 3
--- http_config eval
pod(1, waiting => 0, kv => 0.9) . pod(2, waiting => 5, kv => 0.1)
. upstream([1, 2], balancer => "config=../html/kv-heavy.yaml")
--- init
wait_fresh(2) or die "metrics never became fresh";
--- request eval
main::posts(3, main::completion(main::prompt_of("w")))
--- response_body_like eval
[ (qr/^pod2 /) x 3 ]



=== TEST 7: the random picker spreads identical requests
--- http_config eval
pods(1 .. 4)
. upstream([1 .. 4], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-random.yaml")
--- request eval
[ @{ main::posts(12, main::completion($main::Long)) }, "GET /llmd/status" ]
--- response_body_like eval
[ (qr/^pod\d/) x 12,
  qr/"picks":[1-9]\d*,.*"picks":[1-9]\d*,/s ]



=== TEST 8: a 1 MB prompt spilled to a temp file is parsed and matched
--- http_config eval
pods(1 .. 3) . upstream([1 .. 3])
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
[ main::post(main::completion(main::prompt_of("big", 1048576))),
  main::post(main::completion(main::prompt_of("big", 1048576))) ]
--- response_headers_like eval
[ { "X-LLMD-Prefix-Match" => qr{^0/256$} },
  { "X-LLMD-Prefix-Match" => qr{^256/256$} } ]
--- error_log
a client request body is buffered to a temporary file
--- timeout: 10



=== TEST 9: malformed JSON gets a 400 OpenAI error, the upstream is not contacted
--- http_config eval
pods(1, 2) . upstream([1, 2])
--- request eval
[ "POST /v1/completions\n{\"model\": \"m\", \"prompt\": ", "GET /llmd/status" ]
--- error_code eval
[ 400, 200 ]
--- response_body_like eval
[ qr/^\{"error":\{"message":"[^"]*JSON[^"]*","type":"BadRequestError","param":null,"code":400\}\}$/,
  qr/"rejected_bad_request":1,.*"picks":0,.*"picks":0,/s ]
--- response_headers_like eval
[ { "Content-Type" => qr{^application/json} }, {} ]



=== TEST 10: a prompt of the wrong type is a 400 too
--- http_config eval
pods(1, 2) . upstream([1, 2])
--- request
POST /v1/completions
{"model":"m","prompt":{"text":"hi"}}
--- error_code: 400
--- response_body_like chop
"type":"BadRequestError"



=== TEST 11: keepalive to the pods coexists with the balancer
--- http_config eval
pods(1 .. 2) . upstream([1 .. 2], extra => "    keepalive 8;\n")
--- init
wait_fresh(2) or die "metrics never became fresh";
--- request eval
main::posts(3, main::completion($main::Long))
--- response_body_like eval
[ qr/^pod\d 1$/, qr/^pod\d 2$/, qr/^pod\d 3$/ ]



=== TEST 12: no endpoint available gives a 503 OpenAI error
--- http_config eval
pods(1, 2) . upstream([1, 2], server_args => " down")
--- request eval
main::post(main::completion("hello"))
--- error_code: 503
--- response_body_like chop
^\{"error":\{"message":"no inference endpoint is available in upstream \\"vllm\\"","type":"ServiceUnavailableError","param":null,"code":503\}\}$



=== TEST 13: a retry goes to the next-best endpoint not tried
--- http_config eval
pod(1, waiting => 0, extra => "location /v1/ { return 502; }")
. pod(2, waiting => 1) . pod(3, waiting => 4)
. upstream([1, 2, 3], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-load.yaml")
--- config eval
$::Front =~ s/proxy_buffering off;/proxy_buffering off;\n        proxy_next_upstream error http_502 non_idempotent;/r
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
main::post(main::completion(main::prompt_of("retry")))
--- response_body_like chop
^pod2 
--- response_headers
X-Upstreams: $TEST_NGINX_POD1, $TEST_NGINX_POD2



=== TEST 14: chat requests with multi-part content stick by prefix
--- http_config eval
pods(1 .. 4) . upstream([1 .. 4])
--- init
wait_fresh(4) or die "metrics never became fresh";
--- request eval
[ map { "POST /v1/chat/completions\n"
        . main::chat(main::prompt_of("sys", 900), "question $_") } 1 .. 4 ]
--- response_headers_like eval
[ { "X-LLMD-Prefix-Match" => qr{^0/\d+$} },
  ({ "X-LLMD-Prefix-Match" => qr{^1[0-9]/1[0-9]$} }) x 3 ]



=== TEST 15: debug log has one "Calculated score" line per endpoint per scorer
--- http_config eval
pods(1, 2) . upstream([1, 2])
--- request eval
main::post(main::completion("hello there"))
--- grep_error_log eval
qr/llmd: Calculated score plugin=\S+ endpoint=\S+/
--- grep_error_log_out
llmd: Calculated score plugin=queue-scorer/queue-scorer endpoint=$TEST_NGINX_POD1
llmd: Calculated score plugin=queue-scorer/queue-scorer endpoint=$TEST_NGINX_POD2
llmd: Calculated score plugin=kv-cache-utilization-scorer/kv-cache-utilization-scorer endpoint=$TEST_NGINX_POD1
llmd: Calculated score plugin=kv-cache-utilization-scorer/kv-cache-utilization-scorer endpoint=$TEST_NGINX_POD2
llmd: Calculated score plugin=prefix-cache-scorer/prefix-cache-scorer endpoint=$TEST_NGINX_POD1
llmd: Calculated score plugin=prefix-cache-scorer/prefix-cache-scorer endpoint=$TEST_NGINX_POD2



=== TEST 16: requests to other paths are scheduled on load signals alone
--- http_config eval
pods(1, 2) . upstream([1, 2])
--- request
GET /v1/models
--- response_body_like chop
^pod\d
--- response_headers_like
X-LLMD-Prefix-Match: ^0/0$
X-LLMD-Decision-Us: ^\d+\.\d$



=== TEST 17: garbage and failing /metrics are reported, requests still served
--- http_config eval
pod(1, metrics => "<html>not metrics</html>") . pod(2, metrics_status => 404)
. upstream([1, 2])
--- init
Llmd::Util::wait_until(10, sub {
    my $st = status_json() or return 0;
    my @e = @{ $st->{upstreams}[0]{endpoints} };
    return 2 == grep { defined $_->{last_error} } @e;
}) or die "scrape errors never reported";
--- request eval
[ main::post(main::completion("x" x 200)), "GET /llmd/status" ]
--- response_body_like eval
[ qr/^pod\d/,
  qr/"fresh":false,.*"last_error":"not Prometheus text[^"]*".*"fresh":false,.*"last_error":"HTTP status 404"/s ]
--- error_log eval
[ qr/llmd: cannot scrape \Q$ENV{TEST_NGINX_POD1}\E\/metrics in upstream "vllm": /,
  qr/llmd: cannot scrape \Q$ENV{TEST_NGINX_POD2}\E\/metrics in upstream "vllm": HTTP status 404/ ]



=== TEST 18: Prometheus exposition: every documented name, with the values the pods and requests imply
--- http_config eval
pod(1, waiting => 3, kv => 0.2) . pod(2, waiting => 1, kv => 0.6)
. pod(3, metrics_status => 500) . upstream([1, 2, 3])
--- init
Llmd::Util::wait_until(10, sub {
    my $st = status_json() or return 0;
    my @e = @{ $st->{upstreams}[0]{endpoints} };
    return $e[0]{fresh} && $e[1]{fresh} && $e[2]{scrape_errors} >= 2;
}) or die "metrics never became fresh";
--- request eval
[ "POST /v1/completions\n{\"model\": \"m\", \"prompt\": ",
  main::post(main::completion($main::Long)),
  main::post(main::completion($main::Long)), "GET /llmd/metrics" ]
--- error_code eval
[ 400, 200, 200, 200 ]
--- response_body_like eval
my ($p1, $p2, $p3) = map { $ENV{"TEST_NGINX_POD$_"} } 1 .. 3;
[ qr/BadRequestError/, qr/^pod/, qr/^pod/,
  prom_has('llmd_decisions_total{upstream="vllm"} 2',
    'llmd_rejected_requests_total{upstream="vllm",reason="bad_request"} 1',
    'llmd_rejected_requests_total{upstream="vllm",reason="no_endpoint"} 0',
    'inference_extension_scheduler_e2e_duration_seconds_bucket{upstream="vllm",le="+Inf"} 2',
    'inference_extension_scheduler_e2e_duration_seconds_count{upstream="vllm"} 2',
    'inference_extension_prefix_indexer_size{upstream="vllm"} 16',
    'llmd_prefix_index_evictions_total{upstream="vllm"} 0',
    'llmd_prefix_blocks_total{upstream="vllm",result="looked_up"} 32',
    'llmd_prefix_blocks_total{upstream="vllm",result="hit"} 16',
    (map { qq{llmd_endpoint_info{upstream="vllm",endpoint="$_",source="static",state="active",labels=""} 1} } $p1, $p2, $p3),
    qr/llmd_endpoint_picks_total\{upstream="vllm",endpoint="(?:\Q$p1\E|\Q$p2\E)"\} 2/,
    (map { qq{llmd_endpoint_active_requests{upstream="vllm",endpoint="$_"} 0} } $p1, $p2, $p3),
    qq{llmd_scrape_errors_total{upstream="vllm",endpoint="$p1"} 0},
    qq{llmd_scrape_errors_total{upstream="vllm",endpoint="$p2"} 0},
    qr/llmd_scrape_errors_total\{upstream="vllm",endpoint="\Q$p3\E"\} [1-9]\d*/,
    'inference_pool_average_kv_cache_utilization{name="vllm"} 0.4000',
    'inference_pool_average_queue_size{name="vllm"} 2.0000',
    'inference_pool_ready_pods{name="vllm"} 2') ]
--- response_headers_like eval
[ {}, {}, {}, { "Content-Type" => qr{^text/plain; version=0\.0\.4} } ]



=== TEST 19: a refused request (400) keeps the client's connection open
--- http_config eval
pods(1, 2) . upstream([1, 2])
--- init
use IO::Socket::INET;
my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
    PeerPort => Llmd::Util::server_port(), Timeout => 5) or die "connect: $!";
my $bad = '{"model": "m", "prompt": ';
my $good = main::completion("hello again");
print $s "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "
       . length($bad) . "\r\nContent-Type: application/json\r\n\r\n$bad";
my $resp = '';
while ($resp !~ /\r\n\r\n/ || length($resp) < index($resp, "\r\n\r\n") + 4
       + (($resp =~ /Content-Length: (\d+)/i)[0] // 0)) {
    sysread($s, $resp, 4096, length $resp) or last;
}
die "first answer: $resp" unless $resp =~ m{^HTTP/1\.1 400 } && $resp !~ /Connection: close/i;
print $s "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "
       . length($good) . "\r\nConnection: close\r\n\r\n$good";
my $second = '';
1 while sysread($s, $second, 4096, length $second);
die "second answer on the same connection: $second"
    unless $second =~ m{^HTTP/1\.1 200 } && $second =~ /pod\d/;
--- request
GET /llmd/status
--- response_body_like chop
"rejected_bad_request":1,



=== TEST 20: a request without "model" is proxied (vLLM serves its default model)
--- http_config eval
pods(1, 2) . upstream([1, 2])
--- request
POST /v1/completions
{"prompt":"hello, which model?","max_tokens":4}
--- error_code: 200
--- response_body_like chop
^pod\d



=== TEST 21: llmd_json_errors: nginx's own error pages of a location are vLLM-shaped JSON, e.g. 413
--- http_config eval
pods(1, 2) . upstream([1, 2])
--- config
    location /v1/ {
        client_max_body_size 1k;
        llmd_json_errors on;
        proxy_pass http://vllm;
    }
    location /plain/ {
        client_max_body_size 1k;
        proxy_pass http://vllm;
    }
--- request eval
[ "POST /v1/completions\n" . main::completion("x" x 4000),
  "POST /plain/completions\n" . main::completion("x" x 4000) ]
--- error_code eval
[ 413, 413 ]
--- response_body_like eval
[ qr/^\{"error":\{"message":"request body is too large","type":"BadRequestError","param":null,"code":413\}\}$/,
  qr/<html>/ ]
--- response_headers_like eval
[ { "Content-Type" => qr{^application/json} },
  { "Content-Type" => qr{^text/html} } ]



=== TEST 22: every pod unreachable: the first request gets JSON too (502), not nginx's HTML page
--- http_config eval
upstream([1, 2])
--- request eval
"POST /v1/completions\n" . main::completion("nobody answers")
--- error_code: 502
--- response_body_like chop
^\{"error":\{"message":"no inference endpoint of upstream \\"vllm\\" could be reached","type":"ServiceUnavailableError","param":null,"code":502\}\}$
--- response_headers_like
Content-Type: ^application/json



=== TEST 23: Prometheus: llmd_endpoint_active_requests counts a request in flight, and no_endpoint rejections
--- http_config eval
"upstream vllm {\n    llmd_balancer;\n    llmd_metrics off;\n"
. "    server 127.0.0.1:$main::Silent max_conns=1;\n}\n"
--- config eval
$::Front =~ s/proxy_buffering off;/proxy_buffering off;\n        proxy_read_timeout 3s;/r
--- init
$main::Listener = silent_server($main::Silent);
$main::InFlight = main::start_request(completion("held"));
my $ep = "127.0.0.1:$main::Silent";
Llmd::Util::wait_until(5, sub {
    my $r = Llmd::Util::http_request(path => "/llmd/metrics");
    return $r->{body} =~ /^llmd_endpoint_active_requests\{upstream="vllm",endpoint="\Q$ep\E"\} 1$/m;
}) or die "llmd_endpoint_active_requests never showed the request";
--- request eval
[ main::post(main::completion("a second one")), "GET /llmd/metrics" ]
--- error_code eval
[ 503, 200 ]
--- response_body_like eval
[ qr/ServiceUnavailableError/,
  prom_has(qq{llmd_endpoint_active_requests{upstream="vllm",endpoint="127.0.0.1:$main::Silent"} 1},
           'llmd_rejected_requests_total{upstream="vllm",reason="no_endpoint"} 1',
           'llmd_decisions_total{upstream="vllm"} 2') ]



=== TEST 24: llmd_body_limit: a larger body is proxied unparsed, scheduled on load alone, with a warning
--- http_config eval
pods(1, 2) . upstream([1, 2], directives => "llmd_metrics_interval 50ms;\n    llmd_body_limit 2k;")
--- init
wait_fresh(2) or die "metrics never became fresh";
--- request eval
[ (main::post(main::completion(main::prompt_of("big", 3000)))) x 2,
  (main::post(main::completion(main::prompt_of("small", 1500)))) x 2,
  "POST /v1/completions\n{\"prompt\": " . ("x" x 3000),
  "GET /llmd/status" ]
--- error_code eval
[ 200, 200, 200, 200, 200, 200 ]
--- response_headers_like eval
[ ({ "X-LLMD-Prefix-Match" => qr{^0/0$} }) x 2,
  { "X-LLMD-Prefix-Match" => qr{^0/23$} },
  { "X-LLMD-Prefix-Match" => qr{^23/23$} },
  { "X-LLMD-Prefix-Match" => qr{^0/0$} }, {} ]
--- response_body_like eval
[ (qr/^pod\d/) x 5, qr/"rejected_bad_request":0,.*"load_only":3,/ ]
--- grep_error_log eval
qr/llmd: request body of \d+ bytes is larger than llmd_body_limit 2048, scheduled on load alone/
--- grep_error_log_out eval
qr/\A(?:llmd: request body of 30\d\d bytes is larger than llmd_body_limit 2048, scheduled on load alone\n){3}\z/



=== TEST 25: max_fails: servers that failed max_fails times within fail_timeout are skipped, then a JSON 503
--- http_config eval
upstream([1, 2], server_args => " max_fails=1 fail_timeout=30s")
--- config eval
$::Front =~ s/proxy_buffering off;/proxy_buffering off;\n        proxy_next_upstream error non_idempotent;/r
--- request eval
[ main::post(main::completion("first")), main::post(main::completion("second")),
  "GET /llmd/status" ]
--- error_code eval
[ 502, 503, 200 ]
--- response_body_like eval
[ qr/could be reached/,
  qr/^\{"error":\{"message":"no inference endpoint is available in upstream \\"vllm\\"","type":"ServiceUnavailableError","param":null,"code":503\}\}$/,
  qr/"rejected_no_endpoint":1,.*"fails":1,.*"fails":1,/s ]
--- response_headers_like eval
[ { "X-Upstreams" => qr/^\Q$ENV{TEST_NGINX_POD1}\E, \Q$ENV{TEST_NGINX_POD2}\E$|^\Q$ENV{TEST_NGINX_POD2}\E, \Q$ENV{TEST_NGINX_POD1}\E$/ },
  { "X-Upstreams" => qr/^vllm$/ }, {} ]



=== TEST 26: max_conns: a server with max_conns requests in flight takes no more
--- http_config eval
pod(1, waiting => 9)
. "upstream vllm {\n    llmd_balancer config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-load.yaml;\n"
. "    llmd_metrics_interval 50ms;\n"
. "    server 127.0.0.1:$main::Silent max_conns=1;\n"
. "    server $ENV{TEST_NGINX_POD1};\n}\n"
--- config eval
$::Front =~ s/proxy_buffering off;/proxy_buffering off;\n        proxy_read_timeout 3s;/r
--- init
$main::Listener = silent_server($main::Silent);
# the silent server never reports metrics: it is scored as the worst fresh
# pod, i.e. like pod 1 (waiting 9); which one the first request gets is a
# tie: hold requests until one is in flight on the silent server
my $silent = "127.0.0.1:$main::Silent";
wait_fresh(1) or die "metrics never became fresh";
@main::Held = ();
Llmd::Util::wait_until(5, sub {
    push @main::Held, main::start_request(completion("held " . @main::Held));
    Time::HiRes::sleep(0.1);
    my $e = endpoint_status($silent) or return 0;
    return $e->{active} == 1;
}) or die "no request in flight on the silent server";
--- request eval
[ map { main::post(main::completion("more $_")) } 1 .. 4 ]
--- response_headers_like eval
[ ({ "X-LLMD-Endpoint" => qr/^\Q$ENV{TEST_NGINX_POD1}\E$/ }) x 4 ]
--- response_body_like eval
[ (qr/^pod1 /) x 4 ]
--- timeout: 2



=== TEST 27: llmd_metrics off: nothing is scraped, the metric scorers see the pods alike
--- http_config eval
pod(1, waiting => 9, kv => 0.9) . pod(2, waiting => 0, kv => 0)
. upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-load.yaml",
           directives => "llmd_metrics off;\n    llmd_metrics_interval 20ms;")
--- init
Time::HiRes::sleep(0.5);
--- request eval
[ main::post(main::completion("alike")), "GET /llmd/status" ]
--- response_headers_like eval
[ { "X-LLMD-Scores" => qr/^\S+=2\.000 \S+=2\.000$/ }, {} ]
--- response_body_like eval
[ qr/^pod\d/,
  qr/"metrics":\{"enabled":false,.*"scrapes":0,"scrape_errors":0,"fresh":false,.*"scrapes":0,"scrape_errors":0,"fresh":false,/s ]



=== TEST 28: llmd_metrics_uri: the path scraped on every server
--- http_config eval
pod(1, metrics_status => 404, extra => "location = /engine/stats { return 200 \"vllm:num_requests_waiting 4\\nvllm:kv_cache_usage_perc 0.25\\n\"; }")
. upstream([1], directives => "llmd_metrics_interval 50ms;\n    llmd_metrics_uri /engine/stats;")
--- init
wait_fresh(1) or die "metrics from /engine/stats never became fresh";
--- request
GET /llmd/status
--- response_body_like chop
"uri":"/engine/stats",.*"scrape_errors":0,"fresh":true,"metrics_age_ms":\d+,"waiting":4,"running":0,"kv_cache_usage":0\.2500,
--- no_error_log
cannot scrape



=== TEST 29: llmd_metrics_timeout: a scrape that takes longer fails after the timeout
--- http_config eval
"upstream vllm {\n    llmd_balancer;\n    llmd_metrics_interval 50ms;\n"
. "    llmd_metrics_timeout 200ms;\n"
. "    server 127.0.0.1:$main::Silent;\n}\n"
--- init
$main::Listener = silent_server($main::Silent);
my $t0 = Time::HiRes::time();
my $e;
Llmd::Util::wait_until(5, sub {
    $e = endpoint_status("127.0.0.1:$main::Silent") or return 0;
    return $e->{scrape_errors} >= 6;
}) or die "fewer than 6 scrape errors in 5 s: " . JSON::PP->new->encode($e);
my $took = Time::HiRes::time() - $t0;
# 6 timeouts of 200 ms (and intervals of 50 ms) take 1.5 s; with nginx's
# default of 1 s, 6 s
die sprintf("6 timed-out scrapes took %.2f s", $took) if $took > 2.5;
--- request
GET /llmd/status
--- response_body_like chop
"last_error":"timed out after 200 ms"



=== TEST 30: llmd_metrics_buffer: a larger /metrics response is an error, a smaller one is read
--- user_files eval
[ [ "big-metrics.txt", "# " . ("padding " x 700)
    . "\nvllm:num_requests_waiting 1\nvllm:kv_cache_usage_perc 0.1\n" ] ]
--- http_config eval
"server {\n    listen $ENV{TEST_NGINX_POD1};\n    access_log off;\n"
. "    location = /metrics { default_type text/plain;\n"
. "        alias $ENV{TEST_NGINX_HTML_DIR}/big-metrics.txt; }\n"
. "    location / { return 200 \"pod1\\n\"; }\n}\n"
. pod(2, waiting => 2)
. upstream([1, 2], directives => "llmd_metrics_interval 50ms;\n    llmd_metrics_buffer 4k;")
--- init
Llmd::Util::wait_until(10, sub {
    my $e1 = endpoint_status($ENV{TEST_NGINX_POD1}) or return 0;
    my $e2 = endpoint_status($ENV{TEST_NGINX_POD2}) or return 0;
    return $e1->{scrape_errors} >= 1 && $e2->{fresh};
}) or die "the large /metrics was not refused";
--- request
GET /llmd/status
--- response_body_like chop
"scrapes":0,"scrape_errors":[1-9]\d*,"fresh":false,.*"last_error":"response larger than llmd_metrics_buffer \(4096 bytes\)".*"scrape_errors":0,"fresh":true,
--- error_log eval
qr/cannot scrape \Q$ENV{TEST_NGINX_POD1}\E\/metrics in upstream "vllm": response larger than llmd_metrics_buffer \(4096 bytes\)/



=== TEST 31: zone=: the size of the upstream's shared memory; a small zone evicts prefix entries
--- http_config eval
pods(1, 2)
. upstream([1, 2], name => "small", balancer => "zone=256k")
. upstream([1, 2], name => "large", balancer => "zone=4m")
--- config eval
($::Front =~ s/http:\/\/vllm;/http:\/\/small;/r)
. "    location /large/ { proxy_pass http://large/; }\n"
--- init
# 300 prompts of 16 blocks: 4800 entries, more than 256k holds
for my $i (1 .. 300) {
    my $r = Llmd::Util::http_request(method => "POST",
        path => "/v1/completions",
        body => completion(main::prompt_of("evict-$i", 1024)));
    die "request $i: $r->{status}" unless $r->{status} == 200;
}
my $st = status_json() or die "no status";
my ($small, $large) = @{ $st->{upstreams} };
die "upstreams: $small->{name}, $large->{name}"
    unless $small->{name} eq "small" && $large->{name} eq "large";
my ($cs, $cl) = ($small->{prefix_index}{capacity},
                 $large->{prefix_index}{capacity});
die "capacities $cs (256k) and $cl (4m)"
    unless $cs > 0 && $cs < 4800 && $cl > 12 * $cs;
die "no eviction in the 256k zone: " . JSON::PP->new->encode($small->{prefix_index})
    unless $small->{prefix_index}{evictions} > 0
        && $small->{prefix_index}{entries} <= $cs;
die "evictions in the 4m zone" if $large->{prefix_index}{evictions};
--- request
GET /llmd/metrics
--- response_body_like eval
prom_has(qr/llmd_prefix_index_evictions_total\{upstream="small"\} [1-9]\d*/,
         'llmd_prefix_index_evictions_total{upstream="large"} 0')



=== TEST 32: stale metrics: a pod whose scrapes fail keeps its last good values until llmd_metrics_stale, is then scored as the worst fresh pod, and is logged once failing (warn) and once back (notice)
--- http_config eval
unlink $main::Down;
pod(1, waiting => 2) . pod(2, waiting => 8) . flaky_pod(3, $main::Down, waiting => 0)
. upstream([1, 2, 3], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-load.yaml",
           directives => "llmd_metrics_interval 50ms;\n    llmd_metrics_stale 1s;")
--- init
my ($p1, $p3) = ($ENV{TEST_NGINX_POD1}, $ENV{TEST_NGINX_POD3});
wait_fresh(3) or die "metrics never became fresh";
my $ep = main::served_by("fresh");
die "all fresh: went to $ep, not to pod 3 (waiting 0)" unless $ep eq $p3;

# pod 3's scrapes fail from now on
open my $fh, '>', $main::Down or die "$main::Down: $!";
close $fh;
my $t0 = Time::HiRes::time();
Llmd::Util::wait_until(2, sub {
    my $e = endpoint_status($p3) or return 0;
    return defined $e->{last_error};
}) or die "pod 3's failing scrapes were not seen";
my $e = endpoint_status($p3);
die "failing, not yet stale: " . JSON::PP->new->encode($e)
    unless $e->{fresh} && $e->{waiting} == 0;
$ep = main::served_by("last good values");
die "failing, not yet stale: went to $ep, not to pod 3" unless $ep eq $p3;

Llmd::Util::wait_until(5, sub { !endpoint_status($p3)->{fresh} })
    or die "pod 3 never became stale";
my $took = Time::HiRes::time() - $t0;
die sprintf("stale after %.2f s, llmd_metrics_stale is 1s", $took)
    if $took < 0.8 || $took > 1.8;
$ep = main::served_by("stale");
die "stale: went to $ep, not to pod 1 (pod 3 counts as waiting 8)"
    unless $ep eq $p1;

unlink $main::Down;
Llmd::Util::wait_until(5, sub { endpoint_status($p3)->{fresh} })
    or die "pod 3 never came back";
$ep = main::served_by("back");
die "back: went to $ep, not to pod 3" unless $ep eq $p3;
--- request
GET /llmd/status
--- response_body_like chop
"stale_ms":1000,
--- grep_error_log eval
qr/llmd: (?:cannot scrape|metrics of) \S+ .*/
--- grep_error_log_out eval
qr/\Allmd: cannot scrape \Q$ENV{TEST_NGINX_POD3}\E\/metrics in upstream "vllm": HTTP status 503\nllmd: metrics of \Q$ENV{TEST_NGINX_POD3}\E in upstream "vllm" are back\n\z/
--- error_log eval
[ qr/\[warn\] .*cannot scrape \Q$ENV{TEST_NGINX_POD3}\E/,
  qr/\[notice\] .*metrics of \Q$ENV{TEST_NGINX_POD3}\E in upstream "vllm" are back/ ]



=== TEST 33: bodies in two buffers (in memory, and spilled to a file) are joined for the scanner in the worker's buffer: each request sees its own prompt and salt
--- http_config eval
pods(1 .. 3) . upstream([1 .. 3])
--- config eval
"client_body_buffer_size 64k;\n" . $main::Front
--- init
wait_fresh(3) or die "metrics never became fresh";
--- request eval
my $p = main::prompt_of("joined", 32768);
my $big = main::prompt_of("spilled", 204800);
[ main::post(main::completion($p)),
  main::post(main::completion($p)),
  main::post(main::completion($p, fields => { cache_salt => "s1" })),
  main::post(main::completion($big)),
  main::post(main::completion($p, fields => { cache_salt => "s1" })),
  main::post(main::completion($big)),
  main::post(main::completion($p)) ]
--- response_headers_like eval
[ { "X-LLMD-Prefix-Match" => qr{^0/256$} },
  { "X-LLMD-Prefix-Match" => qr{^256/256$} },
  { "X-LLMD-Prefix-Match" => qr{^0/256$} },
  { "X-LLMD-Prefix-Match" => qr{^0/256$} },
  { "X-LLMD-Prefix-Match" => qr{^256/256$} },
  { "X-LLMD-Prefix-Match" => qr{^256/256$} },
  { "X-LLMD-Prefix-Match" => qr{^256/256$} } ]
--- error_log
a client request body is buffered to a temporary file
--- timeout: 10



=== TEST 34: a request's decision is its own until it ends: $llmd_scores at the end of a slow answer (a trailer) is still that request's ranking after a later request with another ranking was decided meanwhile
--- http_config eval
pod(1, extra => "limit_rate 1k;", body => "pod1 " . ("x" x 2500))
. pod(2, extra => "limit_rate 1k;", body => "pod2 " . ("x" x 2500))
. upstream([1, 2])
--- config eval
$main::Front =~ s/(add_header X-LLMD-Scores[^\n]*\n)/$1        add_trailer X-End-Scores \$llmd_scores;\n/r
--- init
wait_fresh(2) or die "metrics never became fresh";
my $body = completion(main::prompt_of("trailer", 4096));
# A: a cold prompt, no prefix anywhere; its answer takes ~2.5 s
my $a = main::start_request($body);
Llmd::Util::wait_until(5, sub {
    my $st = status_json() or return 0;
    return grep { $_->{active} } @{ $st->{upstreams}[0]{endpoints} };
}) or die "request A never went in flight";
# B, decided while A is in flight: the same prompt, now cached where A went
my $b = Llmd::Util::http_request(method => "POST", path => "/v1/completions",
                                 body => $body, timeout => 10);
$b->{status} == 200 or die "B: status $b->{status}";
my $bs = $b->{headers}{"x-llmd-scores"} // die "B: no X-LLMD-Scores";
local $/;
my $ra = <$a>;
my ($hs) = $ra =~ /^X-LLMD-Scores: ([^\r\n]*)/mi or die "A: no scores: $ra";
my ($ts) = $ra =~ /^X-End-Scores: ([^\r\n]*)/mi or die "A: no trailer: $ra";
my ($top_a) = $hs =~ /=([\d.]+)/;
my ($top_b) = $bs =~ /=([\d.]+)/;
$top_b > $top_a or die "B's ranking ($bs) is not above A's ($hs)";
$ts eq $hs or die "A's scores at its end ($ts) are not its own ($hs); B's: $bs";
--- request
GET /llmd/status
--- response_body_like: "decisions":2,
--- no_error_log
[error]
--- timeout: 15
