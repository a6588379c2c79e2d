# Scheduling decisions of llmd_balancer against fake pods (single process:
# the scrapers run inside it, as with master_process off).
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Llmd::Fixtures;

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



=== TEST 18: Prometheus exposition of the balancer's own counters
--- http_config eval
pods(1, 2) . upstream([1, 2])
--- init
wait_fresh(2) or die "metrics never became fresh";
--- request eval
[ main::post(main::completion($main::Long)), "GET /llmd/metrics" ]
--- response_body_like eval
[ qr/^pod/,
  qr/llmd_decisions_total\{upstream="vllm"\} 1\n.*inference_extension_scheduler_e2e_duration_seconds_bucket\{upstream="vllm",le="\+Inf"\} 1\n.*inference_extension_prefix_indexer_size\{upstream="vllm"\} 16\n.*llmd_endpoint_picks_total\{upstream="vllm",endpoint="127\.0\.0\.1:1990[12]"\} 1\n.*inference_pool_ready_pods\{name="vllm"\} 2\n/s ]
--- response_headers_like eval
[ {}, { "Content-Type" => qr{^text/plain; version=0\.0\.4} } ]



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
