# Endpoints that follow pods without a reload (llmd_endpoints): simulated
# vLLM pods on several loopback addresses with one port, as pods in a
# cluster, found through a DNS name served by a DNS server in the test
# (Llmd::DNS) or through llm-d's file-discovery endpoints file. Pods are
# added and removed while nginx runs, also under load, and no request
# fails; a failing source never empties the pool; /llmd/health answers a
# kubelet probe.
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
use Llmd::DNS;

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

master_on();
workers(2);

our $Port = port(30);                    # every pod's port
our $KvPort = port(31);                  # every pod's KV-event PUB
$ENV{TEST_NGINX_SIM_PORT} = $Port;
our @Hosts = map { "127.0.0.$_" } 2 .. 6;
our @Pods = map { "$_:$Port" } @Hosts;
our $Name = 'pods.llmd.test';
our $Tok = repo_root() . "/t/data/tokenizer-tiny.json";
our $Epp = repo_root() . "/t/data/epp-precise-sim.yaml";
our $Dir = File::Temp::tempdir(CLEANUP => 1);
chmod 0755, $Dir;                        # the helper runs as nobody
our $File = "$Dir/endpoints.yaml";

our $Dns = Llmd::DNS->start(zone => {});

our $SimPid = Llmd::Proc::sim(
    args => [ "--hosts", join(",", @Hosts), "--port", $Port, "--model", "m",
              "--block-size", 16, "--time-scale", 20, "--tokenizer", $Tok,
              "--kv-events", "tcp://*:$KvPort", "--quiet" ],
    ports => [ map { ("$_:$Port", "$_:$KvPort") } @Hosts ],
    health => \@Pods);

our $Front = <<'EOF';
    location /v1/ {
        proxy_pass http://vllm;
        proxy_next_upstream error timeout;
        add_header X-LLMD-Endpoint $llmd_endpoint always;
    }
    location = /llmd/status { llmd_status; }
    location = /llmd/metrics { llmd_status prometheus; }
    location = /llmd/health { llmd_health; }
EOF

sub dns_zone {
    my @a = @_;
    $Dns->set_zone({ "$Name." => { A => [ @a ], ttl => 1 } });
}

sub dns_upstream {
    my (%o) = @_;
    my $extra = $o{extra} // '';
    my $labels = $o{labels} ? " labels=$o{labels}" : '';
    my $balancer = $o{balancer} ? " $o{balancer}" : '';
    my $interval = $o{interval} // '200ms';
    return "resolver 127.0.0.1:" . $Dns->port . " valid=1s ipv6=off;\n"
         . "resolver_timeout 1s;\n"
         . "upstream vllm {\n"
         . "    llmd_balancer$balancer;\n"
         . "    llmd_endpoints dns $Name port=$Port interval=$interval$labels;\n"
         . $extra
         . "}\n";
}

sub write_endpoints {
    my (@eps) = @_;
    my $y = "endpoints:\n";
    for my $e (@eps) {
        my ($host, $labels) = @$e;
        (my $n = $host) =~ s/\./-/g;
        $y .= "- name: pod-$n\n  address: \"$host\"\n  port: \"$Port\"\n";
        $y .= "  labels:\n" . join("", map { "    $_: $labels->{$_}\n" }
                                       sort keys %$labels) if $labels;
    }
    open my $fh, '>', "$File.tmp" or die "$File.tmp: $!";
    print $fh $y;
    close $fh;
    rename "$File.tmp", $File or die "rename: $!";
}

# endpoint name => its status entry
sub endpoints {
    my $st = status_json() or return {};
    return { map { $_->{name} => $_ } @{ $st->{upstreams}[0]{endpoints} } };
}

sub active_set {
    my $eps = endpoints();
    return join ",", sort grep { $eps->{$_}{state} eq 'active' } keys %$eps;
}

sub wait_active {
    my ($want, $secs) = @_;
    my $w = join ",", sort @$want;
    return Llmd::Util::wait_until($secs // 10, sub { active_set() eq $w });
}

sub complete {
    my ($text) = @_;
    my $r = Llmd::Util::http_request(method => "POST",
                                     path => "/v1/completions",
                                     body => completion($text));
    return ($r->{status}, $r->{headers}{'x-llmd-endpoint'} // '');
}

# Sends requests until one lands on $pod; returns the seconds it took.
sub time_to_traffic {
    my ($pod, $secs) = @_;
    my $t0 = Time::HiRes::time();
    my $seen = Llmd::Util::wait_until($secs, sub {
        my ($s, $ep) = complete("probe " . rand());
        return $ep eq $pod;
    });
    return $seen ? Time::HiRes::time() - $t0 : undef;
}

sub picks { my $e = endpoints()->{$_[0]}; return $e ? $e->{picks} : 0 }

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("main_config", "load_module $ENV{TEST_NGINX_LLMD_SO};")
        unless defined $block->main_config;
    $block->set_value("config", $Front) unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a DNS name's pods become endpoints once their metrics answer, with the source's labels
--- setup
main::dns_zone(@main::Hosts[0, 1]);
--- http_config eval
main::dns_upstream(labels => "llm-d.ai/role=decode,zone=a")
--- init
main::wait_active([ @main::Pods[0, 1] ]) or die "endpoints: "
    . main::active_set();
my $eps = main::endpoints();
for my $p (@main::Pods[0, 1]) {
    die "$p: " . JSON::PP->new->encode($eps->{$p})
        unless $eps->{$p}{source} eq 'dns'
            && $eps->{$p}{labels}{'llm-d.ai/role'} eq 'decode'
            && $eps->{$p}{labels}{zone} eq 'a';
}
my %seen;
for (1 .. 8) {
    my ($s, $ep) = main::complete("hello $_ " x 8);
    die "status $s" unless $s == 200;
    $seen{$ep}++;
}
die "requests went to " . join(",", keys %seen)
    unless keys %seen && !grep { $_ ne $main::Pods[0] && $_ ne $main::Pods[1] }
                            keys %seen;
--- request
GET /llmd/metrics
--- response_body_like chop
llmd_endpoint_info\{upstream="vllm",endpoint="127\.0\.0\.2:$TEST_NGINX_SIM_PORT",source="dns",state="active",labels="llm-d\.ai/role=decode,zone=a"\} 1
--- no_error_log
[error]



=== TEST 2: a pod added to the name gets requests, a pod removed gets none, without reload
--- setup
main::dns_zone(@main::Hosts[0, 1]);
--- http_config eval
main::dns_upstream()
--- init
main::wait_active([ @main::Pods[0, 1] ]) or die "start: " . main::active_set();
my $master = Llmd::Util::nginx_master_pid();

main::dns_zone(@main::Hosts[0, 1, 2]);
main::wait_active([ @main::Pods[0, 1, 2] ]) or die "add: " . main::active_set();
defined main::time_to_traffic($main::Pods[2], 10)
    or die "the new pod got no request";

main::dns_zone(@main::Hosts[1, 2]);
main::wait_active([ @main::Pods[1, 2] ]) or die "remove: " . main::active_set();
my $before = main::picks($main::Pods[0]);
for (1 .. 10) {
    my ($s, $ep) = main::complete("after $_");
    die "status $s" unless $s == 200;
    die "the removed pod got a request" if $ep eq $main::Pods[0];
}
die "picks of the removed pod grew"
    if main::picks($main::Pods[0]) > $before;
# drained (no request in flight): its slot is given up
Llmd::Util::wait_until(10, sub { !exists main::endpoints()->{$main::Pods[0]} })
    or die "the removed pod was not reaped";
die "nginx was reloaded" unless Llmd::Util::nginx_master_pid() == $master;
--- request
GET /llmd/health
--- response_body_like chop
^\{"status":"ready","upstreams":\{"vllm":\{"endpoints":2,"ready":2\}\}\}$
--- error_log eval
[qr/endpoint 127\.0\.0\.4:$main::Port of upstream "vllm" found by dns pods\.llmd\.test/,
 qr/endpoint 127\.0\.0\.2:$main::Port of upstream "vllm" is gone from dns/]



=== TEST 3: a failing name (NXDOMAIN, SERVFAIL, no address) keeps the pool, logged once
--- setup
main::dns_zone(@main::Hosts[0, 1]);
--- http_config eval
main::dns_upstream()
--- init
main::wait_active([ @main::Pods[0, 1] ]) or die "start: " . main::active_set();
$main::Dns->set_zone({});                                   # NXDOMAIN
Llmd::Util::wait_until(5, sub {
    my $st = status_json();
    return $st && $st->{upstreams}[0]{sources}[0]{errors} >= 3;
}) or die "the failure was not seen";
die "pool changed: " . main::active_set()
    unless main::active_set() eq join(",", @main::Pods[0, 1]);
$main::Dns->set_zone({ "$main::Name." => { servfail => 1 } });
my $errors = status_json()->{upstreams}[0]{sources}[0]{errors};
Llmd::Util::wait_until(5, sub {
    status_json()->{upstreams}[0]{sources}[0]{errors} >= $errors + 3;
}) or die "SERVFAIL not seen";
$main::Dns->set_zone({ "$main::Name." => { A => [] } });   # no address
$errors = status_json()->{upstreams}[0]{sources}[0]{errors};
Llmd::Util::wait_until(5, sub {
    status_json()->{upstreams}[0]{sources}[0]{errors} >= $errors + 3;
}) or die "the empty answer was not seen";
die "pool changed: " . main::active_set()
    unless main::active_set() eq join(",", @main::Pods[0, 1]);
my ($s) = main::complete("still served");
die "status $s" unless $s == 200;
main::dns_zone($main::Hosts[1]);
main::wait_active([ $main::Pods[1] ]) or die "recovery: " . main::active_set();
--- request
GET /llmd/status
--- response_body_like chop
"sources":\[\{"type":"dns","name":"pods\.llmd\.test","port":$TEST_NGINX_SIM_PORT,.*"last_error":null\}\]
--- grep_error_log eval
qr/dns pods\.llmd\.test port $main::Port of upstream "vllm" failed/
--- grep_error_log_out
dns pods.llmd.test port $TEST_NGINX_SIM_PORT of upstream "vllm" failed



=== TEST 4: pods come and go under load: no failed request
--- setup
main::dns_zone(@main::Hosts[0, 1]);
--- http_config eval
main::dns_upstream()
--- init
main::wait_active([ @main::Pods[0, 1] ]) or die "start: " . main::active_set();
my $out = "$main::Dir/churn";
my $lg = Llmd::Proc::spawn([ repo_root() . "/build/bin/llmd-loadgen", "--url",
         "http://127.0.0.1:" . Llmd::Util::server_port(), "--out", $out,
         "--quiet", "--model", "m", "--load", "constant", "--stage", "20:14",
         "--system-prompt-len", 64, "--question-len", 16,
         "--output-len", 8, "--num-groups", 4, "--prompts-per-group", 4,
         "--timeout", 30 ]);
my @figures;
Time::HiRes::sleep(1);
# three rounds: a pod joins, then another leaves
for my $round (0 .. 2) {
    my @now = @main::Hosts[$round, $round + 1];
    main::dns_zone(@now, $main::Hosts[$round + 2]);
    my $t = main::time_to_traffic($main::Pods[$round + 2], 10);
    die "round $round: the new pod got no request" unless defined $t;
    push @figures, sprintf("join %.2f s", $t);
    main::dns_zone(@main::Hosts[$round + 1, $round + 2]);
    my $t0 = Time::HiRes::time();
    main::wait_active([ @main::Pods[$round + 1, $round + 2] ], 10)
        or die "round $round: removal not seen: " . main::active_set();
    push @figures, sprintf("leave %.2f s", Time::HiRes::time() - $t0);
}
my $st = Llmd::Proc::wait_exit($lg, 60);
die "llmd-loadgen exited with " . (($st // -1) >> 8) if $st // 1;
open my $fh, '<', "$out/per_request_lifecycle_metrics.jsonl" or die "$!";
my ($n, $failed, %by) = (0, 0);
while (<$fh>) {
    my $q = JSON::PP->new->decode($_);
    $n++;
    $failed++ unless $q->{ok};
    $by{$q->{server} // '?'}++;
}
Test::More::diag("churn: $n requests, $failed failed; "
                 . join(", ", @figures) . "; per pod: "
                 . join(" ", map { "$_=$by{$_}" } sort keys %by));
die "$failed of $n requests failed" if $failed;
die "only $n requests" if $n < 200;
--- request
GET /llmd/health
--- error_code: 200
--- no_error_log
[error]
[alert]



=== TEST 5: llm-d's file-discovery endpoints file, read again when it changes
--- setup
main::write_endpoints([ $main::Hosts[0], { 'llm-d.ai/role' => 'prefill' } ],
                      [ $main::Hosts[1] ]);
--- http_config eval
"upstream vllm {\n    llmd_balancer;\n"
. "    llmd_endpoints file $main::File interval=200ms;\n}\n"
--- init
main::wait_active([ @main::Pods[0, 1] ]) or die "start: " . main::active_set();
die "labels" unless main::endpoints()->{$main::Pods[0]}{labels}{'llm-d.ai/role'}
                    eq 'prefill';
main::write_endpoints([ $main::Hosts[1] ], [ $main::Hosts[3] ],
                      [ 'not-an-ip' ]);
main::wait_active([ @main::Pods[1, 3] ]) or die "change: " . main::active_set();
open my $fh, '>', $main::File or die;
print $fh "endpoints: [\n";                                  # broken
close $fh;
Llmd::Util::wait_until(5, sub {
    my $st = status_json();
    return $st && $st->{upstreams}[0]{sources}[0]{errors} > 0;
}) or die "the broken file was not seen";
die "pool changed: " . main::active_set()
    unless main::active_set() eq join(",", @main::Pods[1, 3]);
--- request
GET /llmd/status
--- response_body_like chop
"type":"file",.*"last_error":"[^"]*endpoints\.yaml:2: YAML syntax error
--- error_log eval
[qr/1 entry of "[^"]*endpoints\.yaml" skipped, the first: .*invalid IP address "not-an-ip"/,
 qr/file "[^"]*endpoints\.yaml" of upstream "vllm" failed: .*YAML syntax error.*; its endpoints stay as they are/]



=== TEST 6: readiness: 503 until an endpoint has fresh metrics, JSON either way
--- setup
$main::Dns->set_zone({ "$main::Name." => { A => [ '127.0.0.99' ] } });
--- http_config eval
main::dns_upstream()
--- request
GET /llmd/health
--- error_code: 503
--- response_body
{"status":"not ready","upstreams":{"vllm":{"endpoints":0,"ready":0}}}



=== TEST 7: a request with no endpoint at all is a JSON 503
--- setup
$main::Dns->set_zone({ "$main::Name." => { A => [ '127.0.0.99' ] } });
--- http_config eval
main::dns_upstream()
--- request eval
"POST /v1/completions\n" . main::completion("nobody home")
--- error_code: 503
--- response_body_like chop
^\{"error":\{"message":"no inference endpoint is available in upstream \W+vllm\W+","type":"ServiceUnavailableError"



=== TEST 8: connect mode subscribes to the KV events of a pod that appears
--- setup
main::dns_zone($main::Hosts[0]);
--- http_config eval
main::dns_upstream(balancer => "config=$main::Epp",
    extra => "    llmd_tokenizer $main::Tok;\n"
           . "    llmd_kv_events connect port=$main::KvPort;\n")
--- init
main::wait_active([ $main::Pods[0] ]) or die "start: " . main::active_set();
main::dns_zone(@main::Hosts[0, 4]);
main::wait_active([ @main::Pods[0, 4] ]) or die "add: " . main::active_set();
# the new pod serves a prompt (sent to it directly) and publishes its blocks
my $r = Llmd::Util::http_request(method => "POST", path => "/v1/completions",
    addr => $main::Hosts[4], port => $main::Port,
    body => completion(join(" ", map { "sentence $_ for the new pod" } 1 .. 12)));
die "the pod answered $r->{status}" unless $r->{status} == 200;
Llmd::Util::wait_until(10, sub {
    my $e = main::endpoints()->{$main::Pods[4]};
    return $e && $e->{kv}{live} && $e->{kv}{blocks_stored} > 0;
}) or die "no KV events from the new pod: "
    . JSON::PP->new->encode(main::endpoints()->{$main::Pods[4]});
--- request
GET /llmd/status
--- response_body_like chop
"name":"127\.0\.0\.6:$TEST_NGINX_SIM_PORT","state":"active","source":"dns"
--- no_error_log
[alert]



=== TEST 9: a DNS source needs a resolver
--- http_config
upstream vllm {
    llmd_balancer;
    llmd_endpoints dns pods.llmd.test port=8000;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*"llmd_endpoints dns" needs a "resolver" in http\{\}/



=== TEST 10: llmd_endpoints comes after llmd_balancer and takes valid parameters
--- http_config
resolver 127.0.0.1:53;
upstream vllm {
    llmd_balancer;
    llmd_endpoints dns pods.llmd.test labels=bad label=x port=8000;
}
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid labels in "labels=bad": label "bad" is not key=value/



=== TEST 11: an EndpointPickerConfig with llm-d's file-discovery (dataLayer.discovery) loads unchanged
--- setup
main::write_endpoints([ $main::Hosts[2] ], [ $main::Hosts[3] ]);
open my $fh, '>', "$main::Dir/epp-discovery.yaml" or die;
print $fh <<"YAML";
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: file-discovery
  name: file-discovery
  parameters:
    path: $main::File
    watchFile: true
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
dataLayer:
  discovery:
    pluginRef: file-discovery
YAML
close $fh;
--- http_config eval
"upstream vllm {\n    llmd_balancer config=$main::Dir/epp-discovery.yaml;\n}\n"
--- init
main::wait_active([ @main::Pods[2, 3] ]) or die "start: " . main::active_set();
main::write_endpoints([ $main::Hosts[3] ]);
main::wait_active([ $main::Pods[3] ]) or die "watch: " . main::active_set();
my ($s, $ep) = main::complete("from the file");
die "status $s via $ep" unless $s == 200 && $ep eq $main::Pods[3];
--- request
GET /llmd/health
--- error_code: 200



=== TEST 12: an endpoints file named by the EndpointPickerConfig must load at start, as in llm-d
--- setup
open my $fh, '>', "$main::Dir/epp-missing.yaml" or die;
print $fh "apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n"
        . "plugins:\n- type: file-discovery\n  parameters:\n"
        . "    path: $main::Dir/nope.yaml\n- type: queue-scorer\n"
        . "dataLayer:\n  discovery:\n    pluginRef: file-discovery\n";
close $fh;
--- http_config eval
"upstream vllm {\n    llmd_balancer config=$main::Dir/epp-missing.yaml;\n}\n"
--- must_die
--- error_log eval
qr/\[emerg\] .*llmd_balancer: file-discovery: \S*nope\.yaml: cannot open/



=== TEST 13: a reload keeps discovered endpoints taking requests; a removed source's endpoints leave, and stay gone
--- setup
main::dns_zone(@main::Hosts[0, 1]);
--- http_config eval
main::dns_upstream(interval => "100ms")
--- init
main::wait_active([ @main::Pods[0, 1] ]) or die "start: " . main::active_set();
my $conf = Llmd::Util::servroot() . "/conf/nginx.conf";
my @workers = Llmd::Util::worker_pids();
Llmd::Util::reload_nginx() or die "reload failed";
# the new workers see the same candidates at once: no request waits
my ($s, $ep) = main::complete("right after the reload");
die "status $s" unless $s == 200;
die "endpoints after the reload: " . main::active_set()
    unless main::active_set() eq join(",", @main::Pods[0, 1]);
# the same upstream with a file source instead: the DNS endpoints go, also
# when the previous helper resolves the name once more while the new
# configuration takes over (its DNS source asks every 100 ms); back and
# forth three times
main::write_endpoints([ $main::Hosts[4] ]);
my $edit = sub {
    my ($from, $to) = @_;
    open my $in, '<', $conf or die;
    my $text = do { local $/; <$in> };
    close $in;
    $text =~ s{$from}{$to} or die "no $from";
    open my $out, '>', $conf or die;
    print $out $text;
    close $out;
    Llmd::Util::reload_nginx() or die "reload failed";
};
my $dns = qr{llmd_endpoints dns \S+ port=\d+ interval=100ms;};
for my $round (1 .. 3) {
    $edit->($dns, "llmd_endpoints file $main::File interval=200ms;");
    main::wait_active([ $main::Pods[4] ])
        or die "round $round, file: " . main::active_set();
    Time::HiRes::sleep(0.3);
    die "round $round: DNS endpoints came back: " . main::active_set()
        unless main::active_set() eq $main::Pods[4];
    last if $round == 3;
    $edit->(qr{llmd_endpoints file \S+ interval=200ms;},
            "llmd_endpoints dns $main::Name port=$main::Port interval=100ms;");
    main::wait_active([ @main::Pods[0, 1] ])
        or die "round $round, dns: " . main::active_set();
}
--- request
GET /llmd/status
--- response_body_unlike
"source":"dns"



=== TEST 14: more endpoints than an upstream holds: the first 256 are kept, the rest logged once
--- setup
open my $fh, '>', $main::File or die;
print $fh "endpoints:\n";
for my $i (0 .. 299) {
    printf $fh "- {name: p%d, address: 127.1.%d.%d, port: \"%d\"}\n",
        $i, $i / 200, $i % 200 + 1, $main::Port;
}
close $fh;
--- http_config eval
"upstream vllm {\n    llmd_balancer;\n"
. "    llmd_endpoints file $main::File interval=200ms;\n}\n"
--- init
Llmd::Util::wait_until(10, sub {
    my $st = status_json() or return 0;
    return $st->{upstreams}[0]{sources}[0]{endpoints} == 256
        && @{ $st->{upstreams}[0]{endpoints} } == 256;
}) or die "not 256 endpoints";
# nobody answers there: all pending, none takes requests
die "active: " . main::active_set() if main::active_set() ne '';
--- request
GET /llmd/health
--- error_code: 503
--- grep_error_log eval
qr/44 entries of "[^"]*" skipped, the first: [^\n]*more than 256 endpoints/
--- grep_error_log_out eval
qr/\A[^\n]+\n\z/
