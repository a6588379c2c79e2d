# Several nginx replicas in front of the same pods. In precise mode with
# `llmd_kv_events connect`, every replica subscribes to every pod's KV
# events, so all replicas see the same caches and send a cached prefix to
# the same pod. In approximate mode a replica learns only from what it
# routed itself: what replica A sent somewhere is unknown to replica B
# (docs/endpoints.md says what to do about it).
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use File::Temp ();
use JSON::PP ();
use Time::HiRes ();
use POSIX ();
use Llmd::Fixtures;
use Llmd::Ports qw(port);
use Llmd::Proc;
use Llmd::Util;

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

our $Port = port(30);                    # every pod's port
our $KvPort = port(31);
our @Hosts = map { "127.0.0.$_" } 7 .. 9;
our @Pods = map { "$_:$Port" } @Hosts;
our $PortB = Llmd::Util::server_port() + 1;   # replica B
our $Tok = repo_root() . "/t/data/tokenizer-tiny.json";
our $Epp = repo_root() . "/t/data/epp-precise-sim.yaml";

Llmd::Ports::assert_free($PortB);
our $SimPid = Llmd::Proc::sim(
    args => [ "--hosts", join(",", @Hosts), "--port", $Port, "--model", "m",
              "--block-size", 16, "--time-scale", 20, "--tokenizer", $Tok,
              "--kv-events", "tcp://*:$KvPort", "--quiet" ],
    ports => [ map { ("$_:$Port", "$_:$KvPort") } @Hosts ],
    health => \@Pods);

our $BPid;

sub upstream_of {
    my ($mode) = @_;
    my $servers = join "", map { "    server $_;\n" } @Pods;
    return $mode eq 'precise'
        ? "upstream vllm {\n    llmd_balancer config=$Epp;\n"
          . "    llmd_tokenizer $Tok;\n"
          . "    llmd_kv_events connect port=$KvPort;\n"
          . "    llmd_kv_speculative 0;\n$servers}\n"
        : "upstream vllm {\n    llmd_balancer;\n$servers}\n";
}

our $Front = <<'EOF';
    location /v1/ {
        proxy_pass http://vllm;
        add_header X-LLMD-Endpoint $llmd_endpoint always;
        add_header X-LLMD-Prefix-Match $llmd_prefix_match always;
    }
    location = /llmd/status { llmd_status; }
EOF

# Replica B: a second nginx with the same upstream, in the foreground
# (master off: the one process also receives KV events), killed at the end.
sub start_b {
    my ($mode) = @_;
    stop_b();
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    mkdir "$dir/logs";
    open my $fh, '>', "$dir/nginx.conf" or die;
    print $fh "load_module $ENV{TEST_NGINX_LLMD_SO};\n"
            . "daemon off; master_process off; pid $dir/logs/nginx.pid;\n"
            . "error_log $dir/logs/error.log info;\n"
            . "events { worker_connections 256; }\n"
            . "http {\n access_log off;\n client_body_temp_path $dir;\n"
            . " proxy_temp_path $dir;\n" . upstream_of($mode)
            . " server {\n listen 127.0.0.1:$main::PortB;\n$main::Front }\n}\n";
    close $fh;
    $BPid = Llmd::Proc::spawn([ "/usr/sbin/nginx", "-p", "$dir/",
                                "-c", "$dir/nginx.conf" ],
                              stderr => "$dir/logs/stderr.log");
    Llmd::Util::wait_until(10, sub {
        my $r = Llmd::Util::http_request(method => "GET", port => $PortB,
                                         path => "/llmd/status", timeout => 1);
        return $r && $r->{status} == 200;
    }) or die "replica B did not start";
}

sub stop_b {
    return unless $BPid;
    kill 'QUIT', $BPid;
    Llmd::Proc::wait_exit($BPid, 10) // Llmd::Proc::stop($BPid);
    $BPid = undef;
}

sub ask {
    my ($port, $text) = @_;
    my $r = Llmd::Util::http_request(method => "POST", port => $port,
                                     path => "/v1/completions",
                                     body => completion($text));
    die "replica on $port answered $r->{status}" unless $r->{status} == 200;
    return ($r->{headers}{'x-llmd-endpoint'},
            $r->{headers}{'x-llmd-prefix-match'});
}

# a long prompt of its own per pod (tiny tokenizer: ~1 token per byte)
sub prompt { my ($i) = @_; return join " ", map { "pod $i line $_ cached" }
                                            1 .. 14 }

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("main_config", "load_module $ENV{TEST_NGINX_LLMD_SO};")
        unless defined $block->main_config;
    $block->set_value("config", $Front) unless defined $block->config;
});

master_on();
no_shuffle();
run_tests();

__DATA__

=== TEST 1: precise, connect mode: both replicas send a cached prefix to the pod that holds it
--- http_config eval
main::upstream_of('precise')
--- init
main::start_b('precise');
my @replicas = (Llmd::Util::server_port(), $main::PortB);
my $direct = sub {
    my ($i, $text) = @_;
    my $r = Llmd::Util::http_request(method => "POST", addr => $main::Hosts[$i],
        port => $main::Port, path => "/v1/completions",
        body => completion($text));
    die "pod $i answered $r->{status}" unless $r->{status} == 200;
};
# blocks stored per replica port and pod name
my $stored = sub {
    my %s;
    for my $port (@replicas) {
        my $st = status_json(port => $port) or next;
        $s{$port}{$_->{name}} = $_->{kv}{live} ? $_->{kv}{blocks_stored} : 0
            for @{ $st->{upstreams}[0]{endpoints} };
    }
    return \%s;
};
# a SUB connects asynchronously and a pod's PUB drops what it publishes
# before then: throwaway prompts until both replicas hear every pod
my $n = 0;
Llmd::Util::wait_until(20, sub {
    $direct->($_, "warm-up $n " . main::prompt(9)) for 0 .. 2;
    $n++;
    Time::HiRes::sleep(0.2);
    my $s = $stored->();
    return 6 == grep { ($s->{$_->[0]}{$_->[1]} // 0) > 0 }
                map { my $p = $_; map { [ $p, $_ ] } @main::Pods } @replicas;
}) or die "the replicas do not hear every pod: "
          . JSON::PP->new->canonical->encode($stored->());
# every pod caches a prompt of its own, sent to it directly
my $before = $stored->();
$direct->($_, main::prompt($_)) for 0 .. 2;
# both replicas received every pod's events
for my $port (@replicas) {
    Llmd::Util::wait_until(10, sub {
        my $s = $stored->();
        return 3 == grep { ($s->{$port}{$_} // 0) > $before->{$port}{$_} }
                    @main::Pods;
    }) or die "replica on $port does not see the three pods' events";
}
for my $i (0 .. 2) {
    my $q = main::prompt($i) . " and a question $i";
    my ($a, $ma) = main::ask(Llmd::Util::server_port(), $q);
    my ($b, $mb) = main::ask($main::PortB, $q);
    die "prompt $i: replica A sent it to $a, B to $b, the cache is on "
        . $main::Pods[$i]
        unless $a eq $main::Pods[$i] && $b eq $main::Pods[$i];
    # A's request may have cached a block more on the pod by the time B asks
    die "prompt $i: matches $ma / $mb" if $ma =~ m{^0/} || $mb =~ m{^0/};
}
main::stop_b();
--- request
GET /llmd/status
--- response_body_like chop
"prefix_scorer":"precise"



=== TEST 2: approximate: a replica does not know what another one routed
--- http_config eval
main::upstream_of('approximate')
--- init
main::start_b('approximate');
my $q = main::prompt(7) . " approximate";
my ($a1, $m1) = main::ask(Llmd::Util::server_port(), $q);
my ($a2, $m2) = main::ask(Llmd::Util::server_port(), $q);
die "A learned nothing: $m1 then $m2 ($a1, $a2)"
    unless $m1 =~ m{^0/} && $m2 !~ m{^0/} && $a1 eq $a2;
my ($b, $mb) = main::ask($main::PortB, $q);
die "B knew the prefix: $mb" unless $mb =~ m{^0/};
main::stop_b();
--- request
GET /llmd/status
--- response_body_like chop
"prefix_scorer":"approximate"
