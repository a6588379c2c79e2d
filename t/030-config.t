# EndpointPickerConfig files: the seed configs load unchanged and are the
# ones that run (their scorers, weights and picker, not the built-in
# profile, also named "default"); broken ones stop nginx from starting with
# a message naming the file and line.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Llmd::Fixtures;
use Llmd::Util;

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

our $Front = <<'EOF';
    location /v1/ {
        proxy_pass http://vllm;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        add_header X-LLMD-Profile $llmd_profile always;
        add_header X-LLMD-Endpoint $llmd_endpoint always;
        add_header X-LLMD-Scores $llmd_scores always;
    }
    location = /llmd/status { llmd_status; }
EOF

# Every "Calculated score" debug line: which scorers of which profile ran,
# with which weights.
our $Scored = qr/llmd: Calculated score plugin=\S+ endpoint=\S+ score=\S+ weight=\S+/;

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("main_config", "load_module $ENV{TEST_NGINX_LLMD_SO};")
        unless defined $block->main_config;
    $block->set_value("config", $Front) unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the seed default-scheduling config loads and schedules with its weights (queue 1, kv 1, prefix 2)
--- http_config eval
pods(1, 2) . upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-default.yaml")
--- init
wait_fresh(2) or die "metrics never became fresh";
--- request eval
[ "POST /v1/completions\n" . main::completion("hello"), "GET /llmd/status" ]
--- response_body_like eval
[ qr/^pod\d/,
  qr{"config":"[^"]*/conf-examples/epp-default\.yaml","profile":"default","prefix_scorer":"approximate"} ]
--- response_headers_like eval
[ { "X-LLMD-Profile" => qr/^default$/,
    "X-LLMD-Scores" => qr/^\S+=2\.000 \S+=2\.000$/ }, {} ]
--- grep_error_log eval
$main::Scored
--- grep_error_log_out eval
qr/\A(?:llmd: Calculated score plugin=queue-scorer\/queue-scorer endpoint=\S+ score=1\.0000 weight=1\.00\n){2}(?:llmd: Calculated score plugin=kv-cache-scorer\/kv-cache-scorer endpoint=\S+ score=1\.0000 weight=1\.00\n){2}(?:llmd: Calculated score plugin=prefix-cache-scorer\/prefix-cache-scorer endpoint=\S+ score=0\.0000 weight=2\.00\n){2}\z/
--- no_error_log
[warn]



=== TEST 2: the seed load-scheduling config loads and runs: queue and KV scorers only, no prefix scorer
--- http_config eval
pods(1, 2) . upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-load.yaml")
--- init
wait_fresh(2) or die "metrics never became fresh";
--- request eval
[ "POST /v1/completions\n" . main::completion("hello"), "GET /llmd/status" ]
--- response_body_like eval
[ qr/^pod\d/,
  qr{"config":"[^"]*/conf-examples/epp-load\.yaml","profile":"default","prefix_scorer":null} ]
--- response_headers_like eval
[ { "X-LLMD-Scores" => qr/^\S+=2\.000 \S+=2\.000$/ }, {} ]
--- grep_error_log eval
$main::Scored
--- grep_error_log_out eval
qr/\A(?:llmd: Calculated score plugin=queue-scorer\/queue-scorer endpoint=\S+ score=1\.0000 weight=1\.00\n){2}(?:llmd: Calculated score plugin=kv-cache-scorer\/kv-cache-scorer endpoint=\S+ score=1\.0000 weight=1\.00\n){2}\z/



=== TEST 3: the seed precise-scheduling config loads (approximate without llmd_tokenizer)
--- http_config eval
pods(1, 2) . upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-precise.yaml")
--- request eval
"POST /v1/completions\n" . main::completion("hello")
--- response_body_like chop
^pod\d
--- error_log
asks for precise scoring (KV events) but no "llmd_tokenizer" is set; it runs in approximate mode



=== TEST 4: the seed random-scheduling config loads and runs: the random picker, no scorer
--- http_config eval
pods(1, 2) . upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-random.yaml")
--- init
wait_fresh(2) or die "metrics never became fresh";
# the built-in profile would send the same prompt to the same pod each time
# (its prefix scorer: the prompt must fill blocks; "hello" fills none)
my %seen;
my $body = main::completion(prompt_of("random", 1024));
for my $i (1 .. 24) {
    my $r = Llmd::Util::http_request(method => "POST",
        path => "/v1/completions", body => $body);
    $seen{$r->{headers}{"x-llmd-endpoint"} // "none"}++;
}
die "24 identical requests went to " . join(", ", sort keys %seen)
    unless keys %seen == 2;
--- request eval
[ "POST /v1/completions\n" . main::completion("hello"), "GET /llmd/status" ]
--- response_body_like eval
[ qr/^pod\d/,
  qr{"config":"[^"]*/conf-examples/epp-random\.yaml","profile":"default","prefix_scorer":null} ]
--- response_headers_like eval
[ { "X-LLMD-Scores" => qr/^\S+=0\.000 \S+=0\.000$/ }, {} ]
--- no_error_log eval
$main::Scored



=== TEST 5: a YAML syntax error names the file and line
--- user_files
>>> broken.yaml
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
  parameters: [unclosed
schedulingProfiles: []
--- http_config eval
pods(1) . upstream([1], balancer => "config=../html/broken.yaml")
--- must_die
--- error_log eval
qr{\[emerg\] .*llmd_balancer: \S*html/broken\.yaml:\d+: }



=== TEST 6: an unknown plugin type names the file and line
--- user_files
>>> unknown.yaml
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: warp-drive-scorer
--- http_config eval
pods(1) . upstream([1], balancer => "config=../html/unknown.yaml")
--- must_die
--- error_log eval
qr{\[emerg\] .*llmd_balancer: \S*html/unknown\.yaml:5: .*warp-drive-scorer}



=== TEST 7: a dangling pluginRef names the file and line
--- user_files
>>> dangling.yaml
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 1
  - pluginRef: kv-cache-scorer
    weight: 1
--- http_config eval
pods(1) . upstream([1], balancer => "config=../html/dangling.yaml")
--- must_die
--- error_log eval
qr{\[emerg\] .*llmd_balancer: \S*html/dangling\.yaml:10: .*kv-cache-scorer}



=== TEST 8: a negative weight names the file and line
--- user_files
>>> weight.yaml
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: -2
--- http_config eval
pods(1) . upstream([1], balancer => "config=../html/weight.yaml")
--- must_die
--- error_log eval
qr{\[emerg\] .*llmd_balancer: \S*html/weight\.yaml:9: .*weight}



=== TEST 9: a missing config file is an error naming it
--- http_config eval
pods(1) . upstream([1], balancer => "config=../html/nope.yaml")
--- must_die
--- error_log eval
qr{\[emerg\] .*llmd_balancer: .*html/nope\.yaml}



=== TEST 10: backup servers are refused
--- http_config eval
pods(1, 2) . upstream([1], extra => "    server $ENV{TEST_NGINX_POD2} backup;\n")
--- must_die
--- error_log eval
qr{\[emerg\] .*"backup"|\[emerg\] .*backup servers}



=== TEST 11: llmd_balancer after keepalive warns that the method was redefined; llmd runs, keepalive is lost
--- http_config eval
pods(1) . "upstream vllm { server $ENV{TEST_NGINX_POD1}; keepalive 4; llmd_balancer; }"
--- request eval
[ ("POST /v1/completions\n" . main::completion("hello")) x 3,
  "GET /llmd/status" ]
--- response_body_like eval
[ qr/^pod1 1$/, qr/^pod1 1$/, qr/^pod1 1$/,
  qr/"decisions":3,.*"picks":3,/s ]
--- response_headers_like eval
[ ({ "X-LLMD-Endpoint" => qr/^\Q$ENV{TEST_NGINX_POD1}\E$/ }) x 3, {} ]
--- error_log
load balancing method redefined



=== TEST 12: llmd_balancer before keepalive: both run (pod connections reused)
--- http_config eval
pods(1) . "upstream vllm { llmd_balancer; server $ENV{TEST_NGINX_POD1}; keepalive 4; }"
--- request eval
[ ("POST /v1/completions\n" . main::completion("hello")) x 3,
  "GET /llmd/status" ]
--- response_body_like eval
[ qr/^pod1 1$/, qr/^pod1 2$/, qr/^pod1 3$/, qr/"decisions":3,.*"picks":3,/s ]
--- response_headers_like eval
[ ({ "X-LLMD-Endpoint" => qr/^\Q$ENV{TEST_NGINX_POD1}\E$/ }) x 3, {} ]
--- no_error_log
load balancing method redefined



=== TEST 13: llmd_tokenizer_cache below 64k stops nginx
--- http_config eval
pods(1) . upstream([1], directives => "llmd_tokenizer_cache 1k;")
--- must_die
--- error_log eval
qr{\[emerg\] .*"llmd_tokenizer_cache" must be "off", 0 or a size of at least 64k, not "1k"}



=== TEST 14: llmd_tokenizer_cache with a stride out of range stops nginx
--- http_config eval
pods(1) . upstream([1], directives => "llmd_tokenizer_cache 1m stride=0;")
--- must_die
--- error_log eval
qr{\[emerg\] .*invalid "stride=0" \(stride=1\.\.65536 bytes\)}



=== TEST 15: the precise-tokens experiment's config (epp-precise-tokens.yaml) loads and runs its scorers, token-load-scorer with weight 8 over queueThresholdTokens 65536 (approximate without llmd_tokenizer: a cold prompt of 26,216 bytes is 6,554 tokens in flight, 1 - 6554 / 65536 = 0.9000)
--- http_config eval
pods(1, 2) . upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-precise-tokens.yaml")
--- init
wait_fresh(2) or die "metrics never became fresh";
--- request eval
[ "POST /v1/completions\n" . main::completion(prompt_of("tokens", 26216)),
  "GET /llmd/status" ]
--- response_body_like eval
[ qr/^pod\d/,
  qr{"config":"[^"]*/conf-examples/epp-precise-tokens\.yaml","profile":"default","prefix_scorer":"approximate"} ]
--- grep_error_log eval
qr/llmd: Calculated score plugin=token-load-scorer\S* endpoint=\S+ score=\S+ weight=\S+/
--- grep_error_log_out eval
qr/\A(?:llmd: Calculated score plugin=token-load-scorer\/token-load-scorer endpoint=\S+ score=0\.9000 weight=8\.00\n){2}\z/
--- error_log
asks for precise scoring (KV events) but no "llmd_tokenizer" is set; it runs in approximate mode
