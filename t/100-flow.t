# Saturation and flow control (llmd_admission, docs/flow-control.md).
# Pods whose /metrics the test writes (files), and a "held" pod that is the
# test itself: it accepts nginx's connections and answers them one by one
# when the test says so, so the order in which queued requests reach the
# pool is seen exactly. Single process (master off).
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use Time::HiRes ();
use Llmd::Fixtures;
use Llmd::Ports qw(port);
use Llmd::Util qw(wait_until http_request server_port);

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

our $Dir = "/tmp/llmd-100-$$";
mkdir $Dir or die "mkdir $Dir: $!";
END { system("rm", "-rf", $Dir) if defined $Dir && -d $Dir }

our $HeldPort = port(40);

# --- configurations (written once; blocks name them) ---
sub write_file {
    my ($path, $text) = @_;
    open(my $f, '>', "$path.tmp") or die "$path: $!";
    print $f $text;
    close $f;
    rename("$path.tmp", $path) or die "rename $path: $!";
}

my $head = "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n";
my $scorer = "- type: queue-scorer\n";
my $profiles = "schedulingProfiles:\n- name: default\n  plugins:\n"
             . "  - pluginRef: queue-scorer\n";

# flow control off: llm-d's default utilization-detector
write_file("$Dir/legacy.yaml", $head . "plugins:\n" . $scorer . $profiles);

# flow control on, one request at a time (concurrency-detector), TTL 60 s
sub fc_config {
    my (%o) = @_;
    my $fc = "flowControl:\n  saturationDetector:\n"
           . "    pluginRef: concurrency-detector\n" . ($o{fc} // "");
    return $head . "featureGates:\n- flowControl\nplugins:\n" . $scorer
         . "- type: concurrency-detector\n  parameters:\n"
         . "    maxConcurrency: 1\n" . ($o{plugins} // "")
         . $profiles . $fc;
}

write_file("$Dir/fc.yaml", fc_config());
write_file("$Dir/fc-ttl.yaml", fc_config(fc => "  defaultRequestTTL: 400ms\n"));
write_file("$Dir/fc-bound.yaml", fc_config(fc => "  maxRequests: 1\n"));
write_file("$Dir/fc-rr.yaml", fc_config(
    plugins => "- type: round-robin-fairness-policy\n",
    fc => "  defaultPriorityBand:\n"
        . "    fairnessPolicyRef: round-robin-fairness-policy\n"));
# flow control on, utilization-detector with its defaults
write_file("$Dir/fc-util.yaml", $head . "featureGates: [flowControl]\n"
           . "plugins:\n" . $scorer . $profiles);

# flow control on, utilization-detector whose metrics never go stale (the
# pod is scraped once: what nginx sent since counts, not a new scrape)
write_file("$Dir/fc-util-once.yaml", $head . "featureGates: [flowControl]\n"
           . "plugins:\n" . $scorer . "- type: utilization-detector\n"
           . "  parameters:\n    metricsStalenessThreshold: 1h\n"
           . $profiles);

# --- pods with metrics from files ---
sub set_metrics {
    my ($n, %o) = @_;
    my $w = $o{waiting} // 0;
    my $kv = $o{kv} // 0;
    write_file("$Dir/pod$n.txt",
        "vllm:num_requests_running{model_name=\"m\"} 0\n"
      . "vllm:num_requests_waiting{model_name=\"m\"} $w\n"
      . "vllm:kv_cache_usage_perc{model_name=\"m\"} $kv\n");
}

sub mpod {
    my ($n) = @_;
    my $port = pod_port($n);
    return <<"EOF";
server {
    listen 127.0.0.1:$port;
    access_log off;
    location = /metrics { default_type text/plain; alias $Dir/pod$n.txt; }
    location / { return 200 "pod$n\\n"; }
}
EOF
}

# A pod with metrics from its file whose requests go to the held pod;
# an upstream that scrapes it once (interval 1h), llmd_inflight as given.
sub held_mpod_ups {
    my ($n, $inflight) = @_;
    my $port = pod_port($n);
    return "log_format flow '\$request_uri \$llmd_flow_outcome "
         . "\$llmd_priority \$llmd_queue_us \$status';\n" . <<"EOF";
server {
    listen 127.0.0.1:$port;
    access_log off;
    location = /metrics { default_type text/plain; alias $Dir/pod$n.txt; }
    location / { proxy_pass http://127.0.0.1:$HeldPort; }
}
upstream vllm {
    llmd_balancer config=$Dir/fc-util-once.yaml;
    llmd_metrics_interval 1h;
    llmd_inflight $inflight;
    server 127.0.0.1:$port;
}
EOF
}

sub ups {
    my ($config, $servers, $extra) = @_;
    return "log_format flow '\$request_uri \$llmd_flow_outcome "
         . "\$llmd_priority \$llmd_queue_us \$status';\n"
         . "upstream vllm {\n    llmd_balancer config=$Dir/$config;\n"
         . "    llmd_metrics_interval 20ms;\n"
         . "    llmd_objective critical 10;\n"
         . "    llmd_objective batch -1;\n"
         . ($extra // "") . $servers . "}\n";
}

our $Front = <<'EOF';
    access_log logs/flow.log flow;
    location /v1/ {
        llmd_admission vllm poll=5ms;
        proxy_pass http://vllm;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        add_header X-Queue-Us $llmd_queue_us always;
        add_header X-Flow $llmd_flow_outcome always;
    }
    location = /llmd/status { llmd_status; }
    location = /llmd/metrics { llmd_status prometheus; }
EOF

# --- the held pod: the test answers nginx's requests itself ---
our $Held;

sub held_start {
    close($Held) if $Held;
    $Held = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $HeldPort, Listen => 64, ReuseAddr => 1)
        or die "held pod on $HeldPort: $!";
}

# Accepts the next request nginx sends (within $secs); returns its
# connection and the request's "tag" (a field of its JSON body), or ()
# when nothing comes.
sub held_next {
    my ($secs) = @_;
    my $sel = IO::Select->new($Held);
    return () unless $sel->can_read($secs * Llmd::Util::timeout_scale());
    my $c = $Held->accept or return ();
    my $buf = '';
    my $deadline = Time::HiRes::time() + 5;
    while (Time::HiRes::time() < $deadline) {
        my $n = sysread($c, $buf, 65536, length $buf);
        last unless $n;
        if ($buf =~ /\r\n\r\n/) {
            my ($len) = $buf =~ /content-length:\s*(\d+)/i;
            my $hl = index($buf, "\r\n\r\n") + 4;
            last if length($buf) >= $hl + ($len // 0);
        }
    }
    my ($tag) = $buf =~ /"tag":"([^"]+)"/;
    return ($c, $tag // '?');
}

sub held_answer {
    my ($c) = @_;
    print $c "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
           . "Connection: close\r\n\r\nok\n";
    close $c;
}

sub body_of {
    my ($tag) = @_;
    return JSON::PP->new->canonical->encode(
        { model => "m", prompt => "hello", max_tokens => 1, tag => $tag });
}

# Sends a request on its own connection and returns the socket; the
# response is read later with response_of().
sub send_req {
    my ($tag, %h) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
        PeerPort => server_port(), Timeout => 5) or die "connect: $!";
    my $body = body_of($tag);
    my $hdr = join "", map { "$_: $h{$_}\r\n" } sort keys %h;
    print $s "POST /v1/completions HTTP/1.1\r\nHost: x\r\n$hdr"
           . "Content-Length: " . length($body) . "\r\n"
           . "Connection: close\r\n\r\n$body";
    return $s;
}

sub response_of {
    my ($s, $secs) = @_;
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $deadline = Time::HiRes::time() + ($secs // 5) * Llmd::Util::timeout_scale();
    while (Time::HiRes::time() < $deadline) {
        last unless $sel->can_read($deadline - Time::HiRes::time());
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
    }
    my ($status) = $buf =~ m{^HTTP/1\.\d (\d+)};
    return { status => $status // 0, raw => $buf };
}

# Waits until n endpoints are fresh with FIELD at least MIN: a scrape from
# before set_metrics wrote the files would count as fresh too.
sub wait_scraped {
    my ($n, $field, $min) = @_;
    return wait_until(10, sub {
        my $st = status_json() or return 0;
        my @ok = grep { $_->{fresh} && ($_->{$field} // 0) >= $min }
                 @{ $st->{upstreams}[0]{endpoints} // [] };
        return @ok >= $n;
    });
}

sub flow_status {
    my $st = status_json() or return undef;
    return $st->{upstreams}[0]{flow_control};
}

sub queued {
    my ($n) = @_;
    return wait_until(5, sub {
        my $f = flow_status() or return 0;
        return $f->{queue}{requests} == $n;
    });
}

sub post {
    my ($tag, %h) = @_;
    return http_request(method => "POST", path => "/v1/completions",
                        body => body_of($tag), headers => \%h);
}

# The order in which the held pod sees the requests, answering each.
sub drain_order {
    my ($n) = @_;
    my @order;
    for (1 .. $n) {
        my ($c, $tag) = held_next(5);
        last unless $c;
        push @order, $tag;
        held_answer($c);
    }
    return join(" ", @order);
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

=== TEST 1: flow control off: sheddable requests are refused at saturation by queue depth, others pass
--- http_config eval
main::mpod(1) . main::mpod(2)
. main::ups("legacy.yaml", "    server $ENV{TEST_NGINX_POD1};\n    server $ENV{TEST_NGINX_POD2};\n")
--- init
main::set_metrics(1, waiting => 5); main::set_metrics(2, waiting => 5);
main::wait_scraped(2, "waiting", 5) or die "waiting 5 never scraped";
my $r = main::post("shed", "x-llm-d-inference-objective" => "batch");
Test::More::is($r->{status}, 429, "sheddable at saturation: 429");
Test::More::like($r->{body}, qr/^\{"error":\{"message":"system saturated, sheddable request dropped","type":"RateLimitError","param":null,"code":429\}\}$/, "OpenAI-style body");
Test::More::is($r->{headers}{"retry-after"}, "1", "Retry-After");
$r = main::post("normal");
Test::More::is($r->{status}, 200, "priority 0 goes through");
$r = main::post("crit", "x-llm-d-inference-objective" => "critical");
Test::More::is($r->{status}, 200, "priority 10 goes through");
$r = main::post("unknown", "x-llm-d-inference-objective" => "nope");
Test::More::is($r->{status}, 200, "unknown objective: priority 0");
Test::More::is(main::flow_status()->{rejected_sheddable}, 1, "one rejected");
# one pod below the threshold: mean 4.5/5 < 1
main::set_metrics(2, waiting => 4);
wait_until(5, sub { main::post("s2", "x-llm-d-inference-objective" => "batch")->{status} == 200 })
    or Test::More::fail("sheddable not admitted when the pool has room");
my $f = main::flow_status();
Test::More::is($f->{enabled}, JSON::PP::false, "flow control off");
--- request
GET /llmd/metrics
--- response_body_like eval
prom_has(qr/llmd_flow_control_requests_total\{inference_pool="vllm",outcome="RejectedSheddable"\} [1-9]\d*/)



=== TEST 2: saturation by KV-cache usage (threshold 0.8) and by stale metrics (200 ms)
--- http_config eval
main::mpod(1) . main::mpod(2)
. main::ups("legacy.yaml", "    server $ENV{TEST_NGINX_POD1};\n    server $ENV{TEST_NGINX_POD2};\n")
--- init
main::set_metrics(1, kv => 0.8); main::set_metrics(2, kv => 0.8);
main::wait_scraped(2, "kv_cache_usage", 0.8)
    or die "KV 0.8 never scraped from both pods";
Test::More::is(main::post("a", "x-llm-d-inference-objective" => "batch")->{status}, 429, "KV 0.8 on every pod: saturated");
main::set_metrics($_, kv => 0.79) for 1, 2;
wait_until(5, sub { main::post("b", "x-llm-d-inference-objective" => "batch")->{status} == 200 })
    or Test::More::fail("KV 0.79: not saturated");
# metrics vanish: last good values stay, but they age past 200 ms
unlink("$main::Dir/pod1.txt", "$main::Dir/pod2.txt");
wait_until(5, sub { main::post("c", "x-llm-d-inference-objective" => "batch")->{status} == 429 })
    or Test::More::fail("stale metrics: not saturated (fail-closed)");
Test::More::is(main::post("d")->{status}, 200, "priority 0 still served");
Test::More::is(main::flow_status()->{stale_endpoints}, 2, "stale endpoints counted");
--- request
GET /llmd/status
--- response_body_like chop
"stale_endpoints":2



=== TEST 3: flow control: requests wait in nginx, then go in priority then arrival order
--- http_config eval
main::held_start();
main::ups("fc.yaml", "    server 127.0.0.1:$main::HeldPort;\n", "    llmd_metrics off;\n")
--- init
my $a = main::send_req("A");
my ($c, $tag) = main::held_next(5);
Test::More::is($tag, "A", "the first request goes straight to the pod");
my @s;
push @s, main::send_req("B"); main::queued(1) or die "B not queued";
push @s, main::send_req("C"); main::queued(2) or die "C not queued";
push @s, main::send_req("D", "x-llm-d-inference-objective" => "critical");
main::queued(3) or die "D not queued";
Test::More::ok(!main::held_next(0.3), "nothing reaches the pod while it is busy");
my $f = main::flow_status();
my %bands = map { $_->{priority} => $_->{requests} } @{ $f->{queue}{bands} };
Test::More::is_deeply(\%bands, { 0 => 2, 10 => 1 }, "queue per band");
Test::More::is($f->{queue}{flows}[0]{fairness_id}, "default-flow", "default flow");
held_answer($c);
Test::More::is(main::drain_order(3), "D B C", "priority first, then FCFS");
my @codes = map { main::response_of($_)->{status} } $a, @s;
Test::More::is("@codes", "200 200 200 200", "all answered");
$f = main::flow_status();
Test::More::is($f->{queue}{dispatched}, 4, "dispatched");
Test::More::is($f->{queue}{requests}, 0, "queue empty");
--- request
GET /llmd/metrics
--- response_body_like eval
prom_has('llmd_flow_control_requests_total{inference_pool="vllm",outcome="Dispatched"} 4',
         'llmd_flow_control_request_queue_duration_seconds_count{inference_pool="vllm"} 4')
--- no_error_log
[error]



=== TEST 4: TTL: a request that waits too long gets 429 with Retry-After and a JSON body
--- http_config eval
main::held_start();
main::ups("fc-ttl.yaml", "    server 127.0.0.1:$main::HeldPort;\n", "    llmd_metrics off;\n")
--- init
my $a = main::send_req("A");
my ($c) = main::held_next(5);
my $t0 = Time::HiRes::time();
my $r = main::post("B");
my $dt = Time::HiRes::time() - $t0;
Test::More::is($r->{status}, 429, "429 after the TTL");
Test::More::cmp_ok($dt, '>=', 0.39, "not before the TTL (400 ms)");
Test::More::is($r->{headers}{"retry-after"}, "1", "Retry-After");
Test::More::like($r->{headers}{"content-type"}, qr{^application/json}, "JSON");
Test::More::like($r->{body}, qr/^\{"error":\{"message":"request timed out in queue","type":"RateLimitError","param":null,"code":429\}\}$/, "OpenAI-style body");
Test::More::ok(!main::held_next(0.2), "the expired request never reached the pod");
held_answer($c);
Test::More::is(main::response_of($a)->{status}, 200, "the first one is served");
Test::More::is(main::flow_status()->{queue}{evicted_ttl}, 1, "counted");
--- request
GET /llmd/status
--- response_body_like chop
"evicted_ttl":1



=== TEST 5: a client that goes away while queued frees its place; nothing is sent upstream
--- http_config eval
main::held_start();
main::ups("fc.yaml", "    server 127.0.0.1:$main::HeldPort;\n", "    llmd_metrics off;\n")
--- init
my $a = main::send_req("A");
my ($c) = main::held_next(5);
my $b = main::send_req("B");
main::queued(1) or die "B not queued";
close $b;
wait_until(5, sub { main::flow_status()->{queue}{evicted_cancelled} == 1 })
    or Test::More::fail("the cancelled request was not counted");
Test::More::is(main::flow_status()->{queue}{requests}, 0, "queue empty");
held_answer($c);
Test::More::is(main::response_of($a)->{status}, 200, "A served");
Test::More::ok(!main::held_next(0.3), "B never reached the pod");
--- request
GET /llmd/status
--- response_body_like chop
"evicted_cancelled":1,



=== TEST 6: bounds: maxRequests rejects at once with 429
--- http_config eval
main::held_start();
main::ups("fc-bound.yaml", "    server 127.0.0.1:$main::HeldPort;\n", "    llmd_metrics off;\n")
--- init
my $a = main::send_req("A");
my ($c) = main::held_next(5);
my $b = main::send_req("B");
main::queued(1) or die "B not queued";
my $r = main::post("C");
Test::More::is($r->{status}, 429, "over maxRequests: 429");
Test::More::like($r->{body}, qr/queue at capacity/, "says why");
held_answer($c);
Test::More::is(main::drain_order(1), "B", "B still served");
Test::More::is(main::response_of($_)->{status}, 200, "served") for $a, $b;
--- request
GET /llmd/status
--- response_body_like chop
"rejected_capacity":1,



=== TEST 7: fairness: round-robin between two flows (fairness id header)
--- http_config eval
main::held_start();
main::ups("fc-rr.yaml", "    server 127.0.0.1:$main::HeldPort;\n", "    llmd_metrics off;\n")
--- init
my $a = main::send_req("A");
my ($c) = main::held_next(5);
my @s;
my $n = 0;
for my $t ("X1", "X2", "X3", "Y1", "Y2") {
    my $flow = substr($t, 0, 1);
    push @s, main::send_req($t, "x-llm-d-inference-fairness-id" => $flow);
    main::queued(++$n) or die "$t not queued";
}
my %flows = map { $_->{fairness_id} => $_->{requests} }
            @{ main::flow_status()->{queue}{flows} };
Test::More::is_deeply(\%flows, { X => 3, Y => 2 }, "queue per flow");
held_answer($c);
Test::More::is(main::drain_order(5), "X1 Y1 X2 Y2 X3", "flows take turns");
--- request
GET /llmd/metrics
--- response_body_like eval
qr/llmd_flow_control_requests_total\{inference_pool="vllm",outcome="Dispatched"\} 6/



=== TEST 8: flow control with the utilization detector: waits while the pods report a deep queue, goes when it drains
--- http_config eval
main::mpod(1) . main::ups("fc-util.yaml", "    server $ENV{TEST_NGINX_POD1};\n")
--- init
main::set_metrics(1, waiting => 5);
main::wait_scraped(1, "waiting", 5) or die "waiting 5 never scraped";
my $s = main::send_req("A");
main::queued(1) or die "A not queued";
Test::More::is(main::flow_status()->{saturation}, 1, "saturation 1.0");
main::set_metrics(1, waiting => 4);
my $r = main::response_of($s);
Test::More::is($r->{status}, 200, "served once the queue drained");
Test::More::like($r->{raw}, qr/\r\nX-Flow: dispatched\r\n/i, "\$llmd_flow_outcome");
my ($us) = $r->{raw} =~ /\r\nX-Queue-Us: (\d+)\r\n/i;
Test::More::cmp_ok($us // 0, '>', 0, "\$llmd_queue_us");
--- request
GET /llmd/status
--- response_body_like chop
"dispatched":1,


=== TEST 9: utilization detector between two scrapes: the requests sent since the scrape count (one scrape: waiting 4 of 5)
--- http_config eval
main::held_start();
main::set_metrics(3, waiting => 4);
main::held_mpod_ups(3, "on")
--- init
main::wait_scraped(1, "waiting", 4) or die "waiting 4 never scraped";
my $a = main::send_req("A");
my ($c, $tag) = main::held_next(5);
Test::More::is($tag, "A", "A goes on: 4 waiting of 5");
my $b = main::send_req("B");
main::queued(1) or die "B not queued";
Test::More::ok(!main::held_next(0.3), "B waits: A counts as the fifth waiting");
Test::More::is(main::flow_status()->{saturation}, 1, "saturation 1.0 before any new scrape");
held_answer($c);
Test::More::is(main::response_of($a)->{status}, 200, "A answered");
($c, $tag) = main::held_next(5);
Test::More::is($tag // '', "B", "B goes on when A finished");
held_answer($c) if $c;
Test::More::is(main::response_of($b)->{status}, 200, "B answered");
--- request
GET /llmd/status
--- response_body_like chop
"dispatched":2,
--- no_error_log
[error]



=== TEST 10: the same with llmd_inflight off: the last scrape as it is (llm-d's detector), both go on
--- http_config eval
main::held_start();
main::set_metrics(3, waiting => 4);
main::held_mpod_ups(3, "off")
--- init
main::wait_scraped(1, "waiting", 4) or die "waiting 4 never scraped";
my $a = main::send_req("A");
my ($c, $tag) = main::held_next(5);
my $b = main::send_req("B");
my ($c2, $tag2) = main::held_next(5);
Test::More::is(join(" ", sort grep { defined } $tag, $tag2), "A B",
               "B goes on too: the scrape still says 4");
held_answer($_) for grep { $_ } $c, $c2;
Test::More::is(main::response_of($a)->{status}, 200, "A answered");
Test::More::is(main::response_of($b)->{status}, 200, "B answered");
--- request
GET /llmd/status
--- response_body_like chop
"dispatched":2,
--- no_error_log
[error]



=== TEST 11: a request that finishes wakes the next one parked in this worker at once, not at its next poll (poll=5s)
--- http_config eval
main::held_start();
main::ups("fc.yaml", "    server 127.0.0.1:$main::HeldPort;\n", "    llmd_metrics off;\n")
--- config
    location /v1/ {
        llmd_admission vllm poll=5s;
        proxy_pass http://vllm;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
    location = /llmd/status { llmd_status; }
--- init
my $a = main::send_req("A");
my ($c, $tag) = main::held_next(5);
Test::More::is($tag, "A", "A goes straight to the pod");
my $b = main::send_req("B");
main::queued(1) or die "B not queued";
my $t0 = Time::HiRes::time();
held_answer($c);
($c, $tag) = main::held_next(3);
my $dt = Time::HiRes::time() - $t0;
Test::More::is($tag // '', "B", "B reaches the pod after A finished");
Test::More::cmp_ok($dt, '<', 2.5, "well before its next poll (5 s)");
held_answer($c) if $c;
Test::More::is(main::response_of($a)->{status}, 200, "A answered");
Test::More::is(main::response_of($b)->{status}, 200, "B answered");
--- request
GET /llmd/status
--- response_body_like chop
"dispatched":2,
--- no_error_log
[error]
