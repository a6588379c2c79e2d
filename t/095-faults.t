# Faults, against real nginx (master and helper process) and simulated pods
# with their fault switches (POST /sim/fault): a pod down, all pods down and
# back, garbage and slow metrics, the helper killed, an engine restart
# (event sequence reset) in bind and connect mode, reloads under load with
# long streams. Asserted: no failed request where one is avoidable, JSON
# error bodies where one is not, recovery within a stated bound, and a
# bounded error log. Figures are printed with diag().
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Test::More;
use File::Temp ();
use JSON::PP ();
use Time::HiRes ();
use Llmd::Fixtures;
use Llmd::Ports qw(port);
use Llmd::Proc;
use Llmd::Util;

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

master_on();
workers(2);

our $Port = port(30);                    # every pod's port
our $KvPort = port(31);                  # pods' PUB (connect mode)
our $KvBind = port(32);                  # nginx's SUB (bind mode)
Llmd::Ports::assert_free($KvBind);
$ENV{TEST_NGINX_SIM_PORT} = $Port;
our @Hosts = map { "127.0.0.$_" } 10 .. 12;
our @Pods = map { "$_:$Port" } @Hosts;
our $Tok = repo_root() . "/t/data/tokenizer-tiny.json";
our $Epp = repo_root() . "/t/data/epp-precise-sim.yaml";
our $Dir = File::Temp::tempdir(CLEANUP => 1);
our $Scale = 20;

# Two simulators on the same pods' addresses cannot run at once: one
# publishes in bind mode (pods bind, nginx connects), started per block.
our $SimPid;
sub start_sim {
    my (%o) = @_;
    stop_sim();
    my @kv = $o{kv} eq 'connect-to-nginx'
           ? ("--kv-events", "tcp://127.0.0.1:$KvBind")
           : ("--kv-events", "tcp://*:$KvPort");
    $SimPid = Llmd::Proc::sim(
        args => [ "--hosts", join(",", @Hosts), "--port", $Port,
                  "--model", "m", "--block-size", 16, "--time-scale", $Scale,
                  "--tokenizer", $Tok, @kv, "--quiet" ],
        ports => [ map { ("$_:$Port", "$_:$KvPort") } @Hosts ],
        health => \@Pods);
}
sub stop_sim {
    return unless $SimPid;
    Llmd::Proc::stop($SimPid);
    $SimPid = undef;
}

sub fault {
    my ($host, $json) = @_;
    my $r = Llmd::Util::http_request(method => "POST", port => $Port,
                                     addr => $host, path => "/sim/fault",
                                     body => $json, timeout => 2);
    die "fault $json on $host: $r->{status}" unless $r->{status} == 200;
}

our $Front = <<'EOF';
    location /v1/ {
        proxy_pass http://vllm;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffering off;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 1s;
        llmd_json_errors on;
        add_header X-LLMD-Endpoint $llmd_endpoint always;
    }
    location = /llmd/status { llmd_status; }
EOF

sub upstream_of {
    my (%o) = @_;
    my $servers = join "", map { "    server $_;\n" } @Pods;
    my $precise = $o{precise}
        ? "    llmd_tokenizer $Tok;\n    llmd_kv_events $o{precise};\n"
        : '';
    my $bal = $o{precise} ? "config=$Epp" : '';
    return "upstream vllm {\n    llmd_balancer $bal;\n"
         . "    llmd_metrics_interval 50ms;\n    llmd_metrics_timeout 300ms;\n"
         . "    llmd_metrics_stale 1s;\n$precise$servers    keepalive 16;\n}\n";
}

# Starts llmd-loadgen in the background; returns a handle for finish().
sub load {
    my (%o) = @_;
    my $out = "$Dir/" . ($o{name} // "load") . "-" . int(rand(1e9));
    my $pid = Llmd::Proc::spawn([ repo_root() . "/build/bin/llmd-loadgen",
             "--url", "http://127.0.0.1:" . Llmd::Util::server_port(),
             "--out", $out, "--quiet", "--model", "m", "--load", "constant",
             "--stage", "$o{rate}:$o{secs}",
             "--system-prompt-len", 64, "--question-len", 16,
             "--output-len", $o{output} // 8, "--num-groups", 4,
             "--prompts-per-group", 4, "--timeout", 60,
             $o{stream} ? () : ("--no-stream") ]);
    return { pid => $pid, out => $out, t0 => Time::HiRes::time() };
}

# Waits for the load to end; returns (requests, failed, [failures]).
sub finish {
    my ($h) = @_;
    my $st = Llmd::Proc::wait_exit($h->{pid}, 120);
    die "llmd-loadgen exited with " . (($st // -1) >> 8) if $st // 1;
    open my $fh, '<', "$h->{out}/per_request_lifecycle_metrics.jsonl"
        or die "no per-request lines: $!";
    my ($n, @failed) = (0);
    while (<$fh>) {
        my $q = JSON::PP->new->decode($_);
        $n++;
        push @failed, $q unless $q->{ok};
    }
    return ($n, scalar @failed, \@failed);
}

# error.log lines at a level, since the block started
sub log_lines {
    my ($level) = @_;
    open my $fh, '<', Llmd::Util::servroot() . "/logs/error.log" or return 0;
    return scalar grep { /\[$level\]/ } <$fh>;
}

sub complete {
    my ($text) = @_;
    my $r = Llmd::Util::http_request(method => "POST",
                                     path => "/v1/completions",
                                     body => completion($text), timeout => 5);
    return $r;
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

=== TEST 1: a pod goes down under load: no failed request, one warning, no error line per scrape
--- setup
main::start_sim(kv => 'pods-bind');
--- http_config eval
main::upstream_of()
--- init
wait_fresh(3) or die "metrics never became fresh";
my $load = main::load(rate => 20, secs => 6);
Time::HiRes::sleep(1.5);
my $fault_at = Time::HiRes::time() - $load->{t0};
main::fault($main::Hosts[1], '{"down_ms": 2500}');
my ($n, $failed, $f) = main::finish($load);
# A POST the pod was already serving when it went down cannot be retried
# (proxy_next_upstream without non_idempotent): at most one, sent to that
# pod before the fault (loadgen's clock starts a little after $load->{t0}).
my @inflight = grep { $_->{server} eq $main::Pods[1]
                      && $_->{sent} <= $fault_at + 0.05 } @$f;
if ($failed == 1 && @inflight == 1) {
    Test::More::diag("pod down: 1 request in flight on the pod failed: "
                     . JSON::PP->new->canonical->encode($inflight[0]));
    ($failed, $f) = (0, []);
}
my ($errors, $warns) = (main::log_lines('error'), main::log_lines('warn'));
Test::More::diag("pod down: $n requests, $failed failed; error.log: "
                 . "$errors [error], $warns [warn] lines");
die "$failed of $n failed: " . JSON::PP->new->encode($f->[0]) if $failed;
die "$errors error lines (nginx's per-attempt connect errors are bounded "
    . "by max_fails; none come from scraping)" if $errors > 10;
--- request
GET /llmd/status
--- response_body_like chop
"last_error":null
--- grep_error_log eval
qr/cannot scrape 127\.0\.0\.11:$main::Port\/metrics/
--- grep_error_log_out eval
qr/\A[^\n]+\n\z/
--- no_error_log eval
qr/\[error\].*recv\(\) failed/



=== TEST 2: every pod down then back: JSON errors during the outage, requests served again within a second of the pods' return
--- setup
main::start_sim(kv => 'pods-bind');
--- http_config eval
main::upstream_of()
--- init
wait_fresh(3) or die "metrics never became fresh";
main::fault($_, '{"down_ms": 2000}') for @main::Hosts;
my $t_down = Time::HiRes::time();
my ($json, $html, $codes) = (0, 0, '');
while (Time::HiRes::time() - $t_down < 1.5) {
    my $r = main::complete("during the outage");
    $codes .= " $r->{status}";
    if ($r->{headers}{'content-type'} =~ m{^application/json}
        && $r->{body} =~ /^\{"error":\{"message":"(?:[^"\\]|\\.)+","type":"ServiceUnavailableError","param":null,"code":50[23]\}\}$/)
    {
        $json++;
    } else {
        $html++;
    }
    Time::HiRes::sleep(0.1);
}
die "non-JSON error bodies during the outage ($codes)" if $html;
die "no request during the outage" unless $json;
# back after 2 s: the first 200 comes soon after, not after fail_timeout (10s)
my $t_ok;
Llmd::Util::wait_until(12, sub {
    my $r = main::complete("after the outage");
    $t_ok = Time::HiRes::time() if $r->{status} == 200;
    return defined $t_ok;
}) or die "requests not served again";
my $recovery = $t_ok - ($t_down + 2.0);
Test::More::diag(sprintf("all pods down 2 s: %d JSON errors (%s); first "
                 . "200 %.2f s after the pods' return", $json, $codes,
                 $recovery));
die sprintf("recovery took %.2f s", $recovery) if $recovery > 1.5;
--- request
GET /llmd/status
--- response_body_like chop
"fresh":true



=== TEST 3: garbage and slow metrics: the pod is stale, still served, one warning each
--- setup
main::start_sim(kv => 'pods-bind');
--- http_config eval
main::upstream_of()
--- init
wait_fresh(3) or die "metrics never became fresh";
main::fault($main::Hosts[0], '{"metrics_garbage": true}');
main::fault($main::Hosts[2], '{"metrics_delay_ms": 1000}');
Llmd::Util::wait_until(5, sub {
    my $st = status_json() or return 0;
    my @stale = grep { !$_->{fresh} } @{ $st->{upstreams}[0]{endpoints} };
    return @stale == 2;
}) or die "the faulty pods never turned stale";
for (1 .. 10) {
    my $r = main::complete("stale $_");
    die "status $r->{status}" unless $r->{status} == 200;
}
main::fault($_, '{"reset": true}') for @main::Hosts[0, 2];
wait_fresh(3) or die "metrics did not come back";
--- request
GET /llmd/status
--- response_body_like chop
"fresh":true.*"fresh":true.*"fresh":true
--- grep_error_log eval
qr/cannot scrape 127\.0\.0\.1[02]:$main::Port\/metrics in upstream "vllm": .*/
--- grep_error_log_out
cannot scrape 127.0.0.10:$TEST_NGINX_SIM_PORT/metrics in upstream "vllm": not Prometheus text exposition
cannot scrape 127.0.0.12:$TEST_NGINX_SIM_PORT/metrics in upstream "vllm": timed out after 300 ms
--- no_error_log
[error]



=== TEST 4: the helper is killed under load: respawned, no failed request
--- setup
main::start_sim(kv => 'pods-bind');
--- http_config eval
main::upstream_of()
--- init
wait_fresh(3) or die "metrics never became fresh";
my $load = main::load(rate => 20, secs => 5);
Time::HiRes::sleep(1);
my ($helper) = map { $_->{pid} } grep { $_->{title} =~ /cache manager/ }
               Llmd::Util::nginx_children();
kill 'KILL', $helper;
Llmd::Util::wait_until(5, sub {
    my ($h) = map { $_->{pid} } grep { $_->{title} =~ /cache manager/ }
              Llmd::Util::nginx_children();
    return $h && $h != $helper;
}) or die "the helper was not respawned";
my ($n, $failed) = main::finish($load);
Test::More::diag("helper killed: $n requests, $failed failed");
die "$failed of $n failed" if $failed;
wait_fresh(3) or die "metrics did not resume";
--- request
GET /llmd/status
--- response_body_like chop
"fresh":true.*"fresh":true.*"fresh":true
--- error_log eval
qr/cache manager process \d+ exited on signal 9/



=== TEST 5: an engine restart (sequence back to 0) clears the pod's KV index, bind mode
--- setup
main::start_sim(kv => 'connect-to-nginx');
--- http_config eval
main::upstream_of(precise => "bind tcp://127.0.0.1:$main::KvBind")
--- init
wait_fresh(3) or die "metrics never became fresh";
my $kv;
# the pods' publishers connect in the background: ask until events come
Llmd::Util::wait_until(10, sub {
    Llmd::Util::http_request(method => "POST", addr => $main::Hosts[0],
        port => $main::Port, path => "/v1/completions",
        body => completion(rand() . " restart sentence" x 8), timeout => 2);
    ($kv) = grep { $_->{name} eq $main::Pods[0] }
            @{ status_json()->{upstreams}[0]{endpoints} };
    return $kv->{kv}{entries} > 0;
}) or die "pod 0 never indexed";
my $clears = $kv->{kv}{clears};
main::fault($main::Hosts[0], '{"down_ms": 300}');     # restarts empty, seq 0
Llmd::Util::wait_until(10, sub {
    main::complete("wake " . rand());                  # new events, seq from 0
    ($kv) = grep { $_->{name} eq $main::Pods[0] }
            @{ status_json()->{upstreams}[0]{endpoints} };
    return $kv->{kv}{clears} > $clears;
}) or die "the restart did not clear pod 0";
--- request
GET /llmd/status
--- response_body_like chop
"kv_events":\{"mode":"bind"
--- error_log
event sequence restarted



=== TEST 6: an engine restart in connect mode: disconnect clears, reconnect resumes
--- setup
main::start_sim(kv => 'pods-bind');
--- http_config eval
main::upstream_of(precise => "connect port=$main::KvPort")
--- init
wait_fresh(3) or die "metrics never became fresh";
my $kv;
my $of = sub {
    ($kv) = grep { $_->{name} eq $main::Pods[1] }
            @{ status_json()->{upstreams}[0]{endpoints} };
    return $kv;
};
# a SUB socket misses what is published before its subscription reaches the
# pod (the helper may still be connecting): ask until events come
Llmd::Util::wait_until(15, sub {
    my $prompt = join " ", rand(), map { "connect sentence $_" } 1 .. 16;
    my $r = Llmd::Util::http_request(method => "POST",
        addr => $main::Hosts[1], port => $main::Port,
        path => "/v1/completions", body => completion($prompt), timeout => 2);
    die "pod 1 answered $r->{status}" unless $r->{status} == 200;
    return $of->()->{kv}{entries} > 0;
}) or die "pod 1 never indexed";
main::fault($main::Hosts[1], '{"down_ms": 500}');
Llmd::Util::wait_until(10, sub { !$of->()->{kv}{live} })
    or die "the disconnect did not make pod 1 stale";
Llmd::Util::wait_until(10, sub {
    Llmd::Util::http_request(method => "POST", addr => $main::Hosts[1],
        port => $main::Port, path => "/v1/completions",
        body => completion("again " . rand()), timeout => 1);
    return $of->()->{kv}{live};
}) or die "pod 1's events not received after its restart";
--- request
GET /llmd/status
--- response_body_like chop
"kv_events":\{"mode":"connect"
--- error_log
event stream disconnected



=== TEST 7: reloads under load with long streams: no failed request
--- setup
main::start_sim(kv => 'pods-bind');
--- http_config eval
main::upstream_of()
--- init
wait_fresh(3) or die "metrics never became fresh";
my $load = main::load(rate => 6, secs => 6, stream => 1, output => 400,
                      name => 'reload');
for (1 .. 3) {
    Time::HiRes::sleep(1.2);
    Llmd::Util::reload_nginx() or die "reload $_ failed";
}
my ($n, $failed, $f) = main::finish($load);
Test::More::diag("3 reloads under streaming load: $n requests, "
                 . "$failed failed");
die "$failed of $n failed: " . JSON::PP->new->encode($f->[0]) if $failed;
--- request
GET /llmd/status
--- error_code: 200
--- no_error_log
[alert]
