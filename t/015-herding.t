# Bursts inside one scrape interval (issue 15): many requests in flight at
# once against pods whose /metrics says they are equally loaded. Each pod's
# metrics are scraped once (llmd_metrics_interval is long) and never change;
# every request is held in flight (the pods proxy it to a server that never
# answers). The in-flight load since the scrape must spread the burst; with
# llmd_inflight off the scraped values alone send it all to the pod that
# looked best at the scrape.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Llmd::Fixtures;
use Llmd::Ports qw(port);
use Llmd::Util;

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

our $Pods = 4;
our $Burst = 16;
our $Slack = 1;          # fair share is $Burst / $Pods

our $Front = <<'EOF';
    location /v1/ {
        proxy_pass http://vllm;
        proxy_http_version 1.1;
        proxy_read_timeout 30s;
        add_header X-LLMD-Endpoint $llmd_endpoint always;
    }
    location = /llmd/status { llmd_status; }
    location = /llmd/metrics { llmd_status prometheus; }
EOF

# Requests to the pods wait here, unanswered, until the test ends.
our $Silent = port(40);
our @Held;

# Pod n of the options of pod(), holding every request in flight.
sub holding_pod {
    my ($n, %o) = @_;
    my $p = pod($n, %o);
    my $hold = "location / {\n        proxy_pass http://127.0.0.1:$Silent;"
             . "\n        proxy_read_timeout 30s;";
    $p =~ s#location / \{\n\s*return 200 "[^"]*";#$hold#
        or die "pod() changed: no location / to replace";
    return $p;
}

# Equal queues and running counts; pod 1 reports a hair less KV usage, as
# one pod always does at the instant of a scrape.
sub holding_pods {
    return join "", map {
        holding_pod($_, waiting => 0, running => 2,
                    kv => $_ == 1 ? 0.10 : 0.11)
    } 1 .. $Pods;
}

sub upstream_of {
    my ($directives, %o) = @_;
    return upstream([1 .. $Pods], %o, directives =>
        "llmd_metrics_interval 60s;\n    llmd_metrics_stale 120s;\n"
        . "    $directives");
}

# Sends the burst, each request on its own connection, and waits until all
# are in flight. Returns the endpoints' status entries.
sub burst {
    require IO::Socket::INET;
    our $Listener = silent_server($Silent);
    wait_fresh($Pods) or die "metrics never became fresh";
    @Held = ();
    for my $i (1 .. $Burst) {
        # distinct prompts of one size: no prefix affinity, equal tokens
        my $body = completion(prompt_of(sprintf("burst %03d", $i), 1024));
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
            PeerPort => Llmd::Util::server_port(), Timeout => 5)
            or die "connect: $!";
        print $s "POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
               . "Content-Length: " . length($body) . "\r\n\r\n$body";
        push @Held, $s;
    }
    my $eps;
    Llmd::Util::wait_until(10, sub {
        my $st = status_json() or return 0;
        $eps = $st->{upstreams}[0]{endpoints};
        my $active = 0;
        $active += $_->{active} for @$eps;
        return $active == $Burst;
    }) or die "the burst never was in flight at once";
    return $eps;
}

# Ends the burst: every held request is closed by its client and finishes
# (free() counts it done). Returns the endpoints' status entries.
sub release {
    close $_ for @Held;
    @Held = ();
    my $eps;
    Llmd::Util::wait_until(10, sub {
        my $st = status_json() or return 0;
        $eps = $st->{upstreams}[0]{endpoints};
        my $active = 0;
        $active += $_->{active} for @$eps;
        return $active == 0;
    }) or die "the burst never finished";
    return $eps;
}

# One request held at a pod that forwards it (unbuffered) to a server of
# this test, which answers when told to: the in-flight tokens of the
# endpoint are read before and after each part of the answer.
our $Streaming = <<'EOF2';
    location /v1/ {
        proxy_pass http://vllm;
        proxy_http_version 1.1;
        proxy_buffering off;
        proxy_read_timeout 30s;
    }
    location = /llmd/status { llmd_status; }
EOF2

sub streaming_pod {
    my $p = holding_pod(1, waiting => 0, running => 0, kv => 0.1);
    $p =~ s#proxy_read_timeout 30s;#proxy_read_timeout 30s;\n        proxy_buffering off;#
        or die "holding_pod() changed";
    return $p . upstream([1], directives =>
        "llmd_metrics_interval 60s;\n    llmd_metrics_stale 120s;");
}

# Sends one completion; returns the client socket and the pod's connection
# to the test's server, the request read from it.
sub one_held {
    require IO::Socket::INET;
    require IO::Select;
    my $listener = silent_server($Silent);
    wait_fresh(1) or die "metrics never became fresh";
    my $body = completion(prompt_of("stream", 1024));
    my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
        PeerPort => Llmd::Util::server_port(), Timeout => 5)
        or die "connect: $!";
    print $c "POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
           . "Content-Length: " . length($body) . "\r\n\r\n$body";
    IO::Select->new($listener)->can_read(10 * Llmd::Util::timeout_scale())
        or die "the request never reached the test's server";
    my $up = $listener->accept or die "accept: $!";
    my $req = "";
    while ($req !~ /\r\n\r\n/) {
        IO::Select->new($up)->can_read(10) or die "no request head";
        sysread($up, $req, 65536, length $req) or die "pod closed";
    }
    return ($c, $up);
}

# Reads from the client until $re matches what it received.
sub client_sees {
    my ($c, $re) = @_;
    require IO::Select;
    my $got = "";
    Llmd::Util::wait_until(10, sub {
        while (IO::Select->new($c)->can_read(0.05)) {
            sysread($c, $got, 65536, length $got) or last;
        }
        return $got =~ $re;
    }) or die "the client never saw $re, only: $got";
}

sub pod1 { return endpoint_status("127.0.0.1:" . pod_port(1)); }

sub picks { return join " ", map { $_->{picks} } @{ $_[0] }; }

sub max_picks {
    my $max = 0;
    $max = $_->{picks} > $max ? $_->{picks} : $max for @{ $_[0] };
    return $max;
}

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

=== TEST 1: a burst within one scrape interval is spread by the in-flight estimate (llm-d's default profile)
--- http_config eval
main::holding_pods() . main::upstream_of("llmd_inflight on;")
--- init
my $eps = main::burst();
my $fair = $main::Burst / $main::Pods;
main::max_picks($eps) <= $fair + $main::Slack
    or die "herded: picks " . main::picks($eps)
           . ", fair share $fair + $main::Slack";
for my $e (@$eps) {
    my $s = $e->{inflight}{since_scrape};
    # one scrape only: everything was sent since it, nothing finished
    $s->{sent} == $e->{picks} && $s->{done} == 0
        or die "$e->{name}: since_scrape $s->{sent}/$s->{done}, "
               . "picks $e->{picks}";
    # 1024 bytes of prompt, nothing cached: 256 tokens each
    $s->{sent_tokens} == 256 * $e->{picks}
        or die "$e->{name}: sent_tokens $s->{sent_tokens}";
    $e->{inflight}{tokens} == 256 * $e->{picks}
        or die "$e->{name}: in-flight tokens $e->{inflight}{tokens}";
    # the scorers see the queue grow by what was sent
    $e->{estimate}{waiting} == $e->{picks}
        or die "$e->{name}: estimated waiting $e->{estimate}{waiting}";
    $e->{estimate}{running} == 2
        or die "$e->{name}: estimated running $e->{estimate}{running}";
}
my $p1 = $ENV{TEST_NGINX_POD1};
my $r = Llmd::Util::http_request(method => "GET", path => "/llmd/metrics");
$r->{body} =~ prom_has(
    qr/llmd_endpoint_inflight_tokens\{upstream="vllm",endpoint="\Q$p1\E"\} [1-9]\d*/,
    qr/llmd_endpoint_since_scrape_requests\{upstream="vllm",endpoint="\Q$p1\E",event="sent"\} [1-9]\d*/,
    qq{llmd_endpoint_since_scrape_requests{upstream="vllm",endpoint="$p1",event="done"} 0},
    qr/llmd_endpoint_since_scrape_tokens\{upstream="vllm",endpoint="\Q$p1\E",event="sent"\} [1-9]\d*/,
    qq{llmd_endpoint_since_scrape_tokens{upstream="vllm",endpoint="$p1",event="done"} 0},
    qr/llmd_endpoint_estimate\{upstream="vllm",endpoint="\Q$p1\E",metric="waiting"\} [1-9]\d*\.0/,
    qq{llmd_endpoint_estimate{upstream="vllm",endpoint="$p1",metric="running"} 2.0},
    qr/llmd_endpoint_estimate\{upstream="vllm",endpoint="\Q$p1\E",metric="kv_cache_usage"\} 0\.1\d+/)
    or die "Prometheus text lacks the in-flight lines:\n$r->{body}";
# finished requests leave: the estimate is the scrape again
for my $e (@{ main::release() }) {
    my $s = $e->{inflight}{since_scrape};
    $s->{done} == $e->{picks} && $s->{done_tokens} == $s->{sent_tokens}
        or die "$e->{name}: done $s->{done}/$s->{done_tokens}";
    $e->{inflight}{tokens} == 0 && $e->{estimate}{waiting} == 0
        && $e->{estimate}{running} == 2
        or die "$e->{name}: in flight $e->{inflight}{tokens}, estimate "
               . "$e->{estimate}{waiting}/$e->{estimate}{running}";
}
--- request eval
[ "GET /llmd/status" ]
--- response_body_like: "since_scrape"
--- no_error_log
[error]



=== TEST 2: llmd_inflight off: the same burst herds onto the pod that looked best at the scrape
--- http_config eval
main::holding_pods() . main::upstream_of("llmd_inflight off;")
--- init
my $eps = main::burst();
main::max_picks($eps) == $main::Burst
    or die "not herded: picks " . main::picks($eps);
for my $e (@$eps) {
    # the scraped values as they were: nothing moved to the present
    $e->{estimate}{waiting} == 0
        or die "$e->{name}: estimated waiting $e->{estimate}{waiting}";
    $e->{inflight}{since_scrape}{sent} == $e->{picks}
        or die "$e->{name}: since_scrape counts are kept anyway";
}
main::release();
--- request eval
[ "GET /llmd/status" ]
--- response_body_like: "endpoints"
--- no_error_log
[error]



=== TEST 3: llm-d's sticky-until-saturated config (token-load-scorer) spreads the burst by in-flight tokens, whatever llmd_inflight says
--- http_config eval
main::holding_pods()
. main::upstream_of("llmd_inflight off;",
      balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-sticky.yaml")
--- init
my $eps = main::burst();
my $fair = $main::Burst / $main::Pods;
main::max_picks($eps) <= $fair + $main::Slack
    or die "herded: picks " . main::picks($eps)
           . ", fair share $fair + $main::Slack";
main::release();
--- request eval
[ "GET /llmd/status" ]
--- response_body_like: epp-sticky\.yaml
--- no_error_log
[error]



=== TEST 4: token-load-scorer against the KV scorer, llmd_inflight off: the tokens in flight outweigh the scrape's small KV difference
--- user_files
>>> tokens.yaml
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: inflight-load-producer
- type: token-load-scorer
  parameters:
    queueThresholdTokens: 2048
- type: kv-cache-utilization-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: token-load-scorer
  - pluginRef: kv-cache-utilization-scorer
--- http_config eval
main::holding_pods()
. main::upstream_of("llmd_inflight off;", balancer => "config=../html/tokens.yaml")
--- init
my $eps = main::burst();
my $fair = $main::Burst / $main::Pods;
main::max_picks($eps) <= $fair + $main::Slack
    or die "herded: picks " . main::picks($eps)
           . ", fair share $fair + $main::Slack";
main::release();
--- request eval
[ "GET /llmd/status" ]
--- response_body_like: tokens\.yaml
--- no_error_log
[error]



=== TEST 5: llm-d's current default (conf-examples/epp-default-current.yaml) loads and spreads the burst too
--- http_config eval
main::holding_pods()
. main::upstream_of("",
      balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-default-current.yaml")
--- init
my $eps = main::burst();
my $fair = $main::Burst / $main::Pods;
main::max_picks($eps) <= $fair + $main::Slack
    or die "herded: picks " . main::picks($eps)
           . ", fair share $fair + $main::Slack";
main::release();
--- request eval
[ "GET /llmd/status" ]
--- response_body_like: epp-default-current\.yaml","profile":"default","prefix_scorer":"approximate"
--- no_error_log
[error]



=== TEST 6: a streamed answer (text/event-stream) frees its prompt tokens at its first chunk, as llm-d's inflight-load-producer does; the request and the KV estimate stay until it ends
--- http_config eval
main::streaming_pod()
--- config eval
$main::Streaming
--- init
my ($c, $up) = main::one_held();
my $e;
Llmd::Util::wait_until(10, sub { $e = main::pod1(); $e && $e->{active} == 1 })
    or die "the request is not in flight";
# 1024 bytes of prompt, nothing cached: 256 tokens
$e->{inflight}{tokens} == 256 or die "in flight: $e->{inflight}{tokens}";
print $up "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        . "Transfer-Encoding: chunked\r\n\r\n";
main::client_sees($c, qr/\r\n\r\n/);
# the answer's head alone: prefill is not known to be done
$e = main::pod1();
$e->{inflight}{tokens} == 256
    or die "freed at the head: in flight $e->{inflight}{tokens}";
my $chunk = "data: {\"choices\":[{\"text\":\"a\"}]}\n\n";
printf $up "%x\r\n%s\r\n", length $chunk, $chunk;
main::client_sees($c, qr/data: /);
$e = main::pod1();
$e->{inflight}{tokens} == 0 && $e->{active} == 1
    or die "after the first chunk: in flight $e->{inflight}{tokens}, "
           . "active $e->{active}";
# the prompt's KV blocks are still on the pod
$e->{inflight}{since_scrape}{done_tokens} == 0
    && $e->{estimate}{kv_cache_usage} > 0.1
    or die "KV estimate dropped: " . $e->{estimate}{kv_cache_usage};
print $up "0\r\n\r\n";
close $up;
main::client_sees($c, qr/0\r\n\r\n/);
Llmd::Util::wait_until(10, sub { $e = main::pod1(); $e->{active} == 0 })
    or die "the request never finished";
$e->{inflight}{tokens} == 0
    && $e->{inflight}{since_scrape}{done_tokens} == 256
    or die "at the end: in flight $e->{inflight}{tokens}, done_tokens "
           . $e->{inflight}{since_scrape}{done_tokens};
close $c;
--- request eval
[ "GET /llmd/status" ]
--- response_body_like: "endpoints"
--- no_error_log
[error]



=== TEST 7: an answer that is not streamed keeps its prompt tokens in flight until it ends
--- http_config eval
main::streaming_pod()
--- config eval
$main::Streaming
--- init
my ($c, $up) = main::one_held();
my $e;
Llmd::Util::wait_until(10, sub { $e = main::pod1(); $e && $e->{active} == 1 })
    or die "the request is not in flight";
print $up "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        . "Content-Length: 20\r\n\r\n{\"choices\":";
main::client_sees($c, qr/choices/);
$e = main::pod1();
$e->{inflight}{tokens} == 256
    or die "freed before the end: in flight $e->{inflight}{tokens}";
print $up "[]}      ";
close $up;
Llmd::Util::wait_until(10, sub { $e = main::pod1(); $e->{active} == 0 })
    or die "the request never finished";
$e->{inflight}{tokens} == 0 or die "in flight $e->{inflight}{tokens}";
close $c;
--- request eval
[ "GET /llmd/status" ]
--- response_body_like: "endpoints"
--- no_error_log
[error]
