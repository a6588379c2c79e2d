# The helper process under a master: it scrapes for every worker, is
# respawned after a crash, and the shared state survives a reload.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Llmd::Fixtures;
use Llmd::Util;

$ENV{TEST_NGINX_REPO} = repo_root();
$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

master_on();
workers(2);

our $Front = <<'EOF';
    location /v1/ {
        proxy_pass http://vllm;
        add_header X-LLMD-Endpoint $llmd_endpoint always;
        add_header X-LLMD-Prefix-Match $llmd_prefix_match always;
    }
    location = /llmd/status { llmd_status; }
EOF

our $Prompt = prompt_of("reload", 2048);

sub helper_pids {
    return map { $_->{pid} }
           grep { $_->{title} =~ /cache manager process/ }
           Llmd::Util::nginx_children();
}

sub worker_pids {
    return sort map { $_->{pid} }
           grep { $_->{title} =~ /worker process/ }
           Llmd::Util::nginx_children();
}

sub scrapes {
    my $st = status_json() or return -1;
    my $n = 0;
    $n += $_->{scrapes} for @{ $st->{upstreams}[0]{endpoints} };
    return $n;
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

=== TEST 1: the helper process scrapes for every worker
--- http_config eval
pod(1, waiting => 7) . pod(2, waiting => 0)
. upstream([1, 2], balancer => "config=$ENV{TEST_NGINX_REPO}/conf-examples/epp-load.yaml")
--- init
my @h = main::helper_pids();
die "expected one llmd helper, found @h" unless @h == 1;
wait_fresh(2) or die "metrics never became fresh";
my $st = status_json();
die "helper pid $st->{upstreams}[0]{metrics}{helper_pid} is not @h"
    unless $st->{upstreams}[0]{metrics}{helper_pid} == $h[0];
--- request eval
[ map { "POST /v1/completions\n" . main::completion("hello $_") } 1 .. 6 ]
--- response_body_like eval
[ (qr/^pod2 /) x 6 ]
--- no_error_log
[alert]



=== TEST 2: the helper is respawned after SIGKILL and scraping resumes
--- http_config eval
pods(1, 2) . upstream([1, 2])
--- init
wait_fresh(2) or die "metrics never became fresh";
my ($old) = main::helper_pids();
die "no helper" unless $old;
kill 'KILL', $old;
Llmd::Util::wait_until(10, sub {
    my @h = main::helper_pids();
    return @h == 1 && $h[0] != $old;
}) or die "helper was not respawned";
my ($new) = main::helper_pids();
my $before = main::scrapes();
Llmd::Util::wait_until(10, sub {
    my $st = status_json() or return 0;
    return $st->{upstreams}[0]{metrics}{helper_pid} == $new
        && main::scrapes() > $before + 4;
}) or die "scraping did not resume in the new helper $new";
--- request
GET /llmd/status
--- response_body_like chop
"fresh":true,.*"fresh":true,
--- error_log eval
qr/cache manager process \d+ exited on signal 9/



=== TEST 3: the prefix index survives a reload
--- http_config eval
pods(1 .. 3) . upstream([1 .. 3])
--- init
my $r = Llmd::Util::http_request(method => "POST", path => "/v1/completions",
                                 body => main::completion($main::Prompt));
die "first request failed" unless $r->{status} == 200;
die "first request matched: $r->{headers}{'x-llmd-prefix-match'}"
    unless $r->{headers}{'x-llmd-prefix-match'} eq "0/32";
my @before = main::worker_pids();
kill 'HUP', Llmd::Util::nginx_master_pid();
Llmd::Util::wait_until(10, sub {
    my @now = main::worker_pids();
    return @now == 2 && !grep { my $p = $_; grep { $_ == $p } @before } @now;
}) or die "reload did not replace the workers";
--- request eval
"POST /v1/completions\n" . main::completion($main::Prompt)
--- response_headers_like
X-LLMD-Prefix-Match: ^32/32$
