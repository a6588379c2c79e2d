# Flow control shared by the workers: two workers, requests spread over
# them (reuseport), one queue in shared memory: they reach the pool in
# arrival order, one at a time. The pod is the test itself (see
# t/100-flow.t).
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use Time::HiRes ();
use Llmd::Fixtures;
use Llmd::Ports qw(port);
use Llmd::Util qw(wait_until server_port);

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

master_on();
workers(2);

our $Dir = "/tmp/llmd-101-$$";
mkdir $Dir or die "mkdir $Dir: $!";
END { system("rm", "-rf", $Dir) if defined $Dir && -d $Dir }
chmod 0755, $Dir;

our $HeldPort = port(40);

open(my $f, '>', "$Dir/fc.yaml") or die;
print $f <<'YAML';
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates: [flowControl]
plugins:
- type: queue-scorer
- type: concurrency-detector
  parameters:
    maxConcurrency: 1
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
flowControl:
  saturationDetector:
    pluginRef: concurrency-detector
YAML
close $f;
chmod 0644, "$Dir/fc.yaml";

open($f, '>', "$Dir/fc-ttl.yaml") or die;
print $f <<'YAML';
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
featureGates: [flowControl]
plugins:
- type: queue-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
flowControl:
  defaultRequestTTL: 300ms
YAML
close $f;
open($f, '>', "$Dir/none.yaml") or die;
print $f "endpoints: []\n";
close $f;
chmod 0644, "$Dir/fc-ttl.yaml", "$Dir/none.yaml";

our $Held = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
    LocalPort => $HeldPort, Listen => 64, ReuseAddr => 1)
    or die "held pod on $HeldPort: $!";

sub held_next {
    my ($secs) = @_;
    return () unless IO::Select->new($Held)->can_read($secs);
    my $c = $Held->accept or return ();
    my $buf = '';
    while (1) {
        my $n = sysread($c, $buf, 65536, length $buf) or last;
        if ((my $hl = index($buf, "\r\n\r\n")) >= 0) {
            my ($len) = $buf =~ /content-length:\s*(\d+)/i;
            last if length($buf) >= $hl + 4 + ($len // 0);
        }
    }
    my ($tag) = $buf =~ /"tag":"([^"]+)"/;
    return ($c, $tag // '?');
}

sub held_answer {
    my ($c) = @_;
    print $c "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
    close $c;
}

sub send_req {
    my ($tag) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
        PeerPort => server_port(), Timeout => 5) or die "connect: $!";
    my $body = JSON::PP->new->canonical->encode(
        { model => "m", prompt => "hi", max_tokens => 1, tag => $tag });
    print $s "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "
           . length($body) . "\r\nConnection: close\r\n\r\n$body";
    return $s;
}

sub response_of {
    my ($s) = @_;
    my $buf = '';
    while (IO::Select->new($s)->can_read(5)) {
        sysread($s, $buf, 65536, length $buf) or last;
    }
    return $buf;
}

sub queued {
    my ($n) = @_;
    return wait_until(5, sub {
        my $st = status_json() or return 0;
        return $st->{upstreams}[0]{flow_control}{queue}{requests} == $n;
    });
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("main_config", "load_module $ENV{TEST_NGINX_LLMD_SO};")
        unless defined $block->main_config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: one queue for both workers: arrival order, one request at a time
--- http_config eval
"upstream vllm {\n    llmd_balancer config=$main::Dir/fc.yaml;\n"
. "    llmd_metrics off;\n    server 127.0.0.1:$main::HeldPort;\n}\n"
--- config
    location /v1/ {
        llmd_admission vllm poll=5ms;
        proxy_pass http://vllm;
        add_header X-Pid $pid always;
        lingering_close off;
    }
    location = /llmd/status { llmd_status; }
--- init
my $a = main::send_req("A");
my ($c, $tag) = main::held_next(5);
Test::More::is($tag, "A", "A goes straight to the pod");
my @s;
for my $i (1 .. 6) {
    push @s, main::send_req("R$i");
    main::queued($i) or die "R$i not queued";
}
main::held_answer($c);
my @order;
for (1 .. 6) {
    my ($c2, $t) = main::held_next(5) or last;
    # one at a time: nothing else arrives while this one is held
    Test::More::ok(!main::held_next(0.1), "$t alone at the pod");
    push @order, $t;
    main::held_answer($c2);
}
Test::More::is("@order", "R1 R2 R3 R4 R5 R6", "arrival order across workers");
my %pids;
for my $s ($a, @s) {
    my $r = main::response_of($s);
    Test::More::like($r, qr{^HTTP/1\.1 200}, "served");
    $pids{$1}++ if $r =~ /\r\nX-Pid: (\d+)/i;
}
Test::More::diag("requests per worker: " . join(" ", map { "$_=$pids{$_}" } sort keys %pids));
--- request
GET /llmd/status
--- response_body_like chop
"dispatched":7,



=== TEST 2: an empty pool: the request waits its TTL, then 503
--- http_config eval
"upstream vllm {\n    llmd_balancer config=$main::Dir/fc-ttl.yaml;\n"
. "    llmd_endpoints file $main::Dir/none.yaml interval=200ms;\n}\n"
--- config
    location /v1/ {
        llmd_admission vllm poll=5ms;
        proxy_pass http://vllm;
    }
    location = /llmd/status { llmd_status; }
--- init
my $t0 = Time::HiRes::time();
my $r = Llmd::Util::http_request(method => "POST", path => "/v1/completions",
    body => '{"model":"m","prompt":"hi","max_tokens":1}');
my $dt = Time::HiRes::time() - $t0;
Test::More::is($r->{status}, 503, "503 with no endpoint");
Test::More::cmp_ok($dt, '>=', 0.29, "after the TTL");
Test::More::like($r->{body}, qr/^\{"error":\{"message":"request timed out in queue and no endpoints are available","type":"ServiceUnavailableError","param":null,"code":503\}\}$/, "OpenAI-style body");
Test::More::ok(!defined $r->{headers}{"retry-after"}, "no Retry-After on 503");
--- request
GET /llmd/status
--- response_body_like chop
"evicted_ttl":1,
