# EndpointPickerConfig files: the seed configs load unchanged; broken ones
# stop nginx from starting with a message naming the file and line.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Llmd::Fixtures;

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

our $Front = <<'EOF';
    location /v1/ {
        proxy_pass http://vllm;
        add_header X-LLMD-Profile $llmd_profile always;
    }
EOF

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("main_config", "load_module $ENV{TEST_NGINX_LLMD_SO};")
        unless defined $block->main_config;
    $block->set_value("config", $Front) unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the seed default-scheduling config loads and schedules
--- http_config eval
pods(1, 2) . upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-default.yaml")
--- request eval
"POST /v1/completions\n" . main::completion("hello")
--- response_body_like chop
^pod\d
--- response_headers
X-LLMD-Profile: default
--- no_error_log
[warn]



=== TEST 2: the seed load-scheduling config loads
--- http_config eval
pods(1, 2) . upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-load.yaml")
--- request eval
"POST /v1/completions\n" . main::completion("hello")
--- response_body_like chop
^pod\d



=== TEST 3: the seed precise-scheduling config loads (approximate without llmd_tokenizer)
--- http_config eval
pods(1, 2) . upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-precise.yaml")
--- request eval
"POST /v1/completions\n" . main::completion("hello")
--- response_body_like chop
^pod\d
--- error_log
asks for precise scoring (KV events) but no "llmd_tokenizer" is set; it runs in approximate mode



=== TEST 4: the seed random-scheduling config loads
--- http_config eval
pods(1, 2) . upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-random.yaml")
--- request eval
"POST /v1/completions\n" . main::completion("hello")
--- response_body_like chop
^pod\d



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



=== TEST 11: llmd_balancer after keepalive warns that the method was redefined
--- http_config eval
pods(1) . "upstream vllm { server 127.0.0.1:19901; keepalive 4; llmd_balancer; }"
--- request eval
"POST /v1/completions\n" . main::completion("hello")
--- response_body_like chop
^pod1
--- error_log
load balancing method redefined
