# The helper process under a master: it scrapes for every worker, is
# respawned after a crash, and the shared state survives a reload: it
# follows each server when the list is reordered, a removed server's state
# goes, and the new helper binds the KV-event socket again. A reload onto
# a new file of the module runs it; one onto a replaced file warns.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use File::Copy ();
use File::Temp ();
use JSON::PP ();
use Llmd::Fixtures;
use Llmd::KV;
use Llmd::Ports qw(port);
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
our $KvPort = port(30);
# nginx binds it: a leftover there would make the helper wait for it
Llmd::Ports::assert_free($KvPort);
our $Tok = repo_root() . "/t/data/tokenizer-tiny.json";
our $Epp = repo_root() . "/t/data/epp-precise-tiny.yaml";

# endpoint name => its status entry
sub endpoints {
    my $st = status_json() or return {};
    return { map { $_->{name} => $_ } @{ $st->{upstreams}[0]{endpoints} } };
}

sub complete {
    my ($text) = @_;
    my $r = Llmd::Util::http_request(method => "POST",
        path => "/v1/completions", body => completion($text));
    die "status $r->{status}" unless $r->{status} == 200;
    return ($r->{headers}{'x-llmd-endpoint'},
            $r->{headers}{'x-llmd-prefix-match'});
}

# Rewrites the upstream's server lines of the running configuration and
# reloads.
sub reload_with_servers {
    my (@servers) = @_;
    my $conf = Llmd::Util::servroot() . "/conf/nginx.conf";
    open my $in, '<', $conf or die "$conf: $!";
    my $text = do { local $/; <$in> };
    close $in;
    my $lines = join "", map { "    server $_;\n" } @servers;
    $text =~ s/(?:    server 127\.0\.0\.1:\d+;\n)+/$lines/ or die "no servers";
    open my $out, '>', $conf or die "$conf: $!";
    print $out $text;
    close $out;
    Llmd::Util::reload_nginx() or die "reload failed";
}

# Copies of the module, each a new file (its own inode), as an upgrade
# installs one.
our $ModDir = File::Temp::tempdir(CLEANUP => 1);

sub module_copy {
    my ($name) = @_;
    my $to = "$ModDir/$name";
    File::Copy::copy($ENV{TEST_NGINX_LLMD_SO}, "$to.tmp") or die "copy: $!";
    rename "$to.tmp", $to or die "rename $to: $!";
    return $to;
}

# Points the running configuration's load_module at $so and reloads.
sub reload_with_module {
    my ($so) = @_;
    my $conf = Llmd::Util::servroot() . "/conf/nginx.conf";
    open my $in, '<', $conf or die "$conf: $!";
    my $text = do { local $/; <$in> };
    close $in;
    $text =~ s/^load_module [^;]+;/load_module $so;/m or die "no load_module";
    open my $out, '>', $conf or die "$conf: $!";
    print $out $text;
    close $out;
    Llmd::Util::reload_nginx() or die "reload failed";
}

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



=== TEST 4: a reload that reorders the servers and removes one: state follows each server, the removed one's goes
--- http_config eval
pods(1 .. 3) . upstream([1 .. 3])
--- init
wait_fresh(3) or die "metrics never became fresh";
# distinct prompts until two pods have served some
my (%on, $eps);
for my $i (1 .. 30) {
    my ($ep, $m) = main::complete(prompt_of("spread-$i", 2048));
    die "prompt $i matched $m" unless $m eq "0/32";
    $on{$ep} //= prompt_of("spread-$i", 2048);
    last if keys %on >= 2;
}
die "every prompt went to " . join(",", keys %on) unless keys %on >= 2;
my ($x, $y) = sort keys %on;
my $before = main::endpoints();
my $total = status_json()->{upstreams}[0]{prefix_index}{entries};
die "prefix entries of $y: $before->{$y}{prefix_entries}"
    unless $before->{$y}{prefix_entries} >= 32;
# the other servers in reverse order, without $y
my @keep = reverse grep { $_ ne $y } map { $ENV{"TEST_NGINX_POD$_"} } 1 .. 3;
main::reload_with_servers(@keep);
my $after = main::endpoints();
die "$y is still listed" if $after->{$y};
for my $ep (@keep) {
    for my $k (qw(picks prefix_entries)) {
        die "$ep: $k $before->{$ep}{$k} before the reload, "
            . "$after->{$ep}{$k} after"
            unless $after->{$ep}{$k} == $before->{$ep}{$k};
    }
}
my $now = status_json()->{upstreams}[0]{prefix_index}{entries};
die "prefix entries: $total before, $now after dropping "
    . "$before->{$y}{prefix_entries} of $y"
    unless $now == $total - $before->{$y}{prefix_entries};
my ($ep, $m) = main::complete($on{$x});
die "${x}'s prompt went to $ep ($m) after the reload"
    unless $ep eq $x && $m eq "32/32";
($ep, $m) = main::complete($on{$y});
die "${y}'s prompt still matched $m on $ep" unless $m eq "0/32";
--- request
GET /llmd/status
--- response_body_like chop
"fresh":true,.*"fresh":true,
--- no_error_log
[alert]



=== TEST 5: after a reload the new helper binds the KV-event socket again and indexes the events
--- http_config eval
pods(1, 2) . upstream([1, 2], balancer => "config=$main::Epp",
    directives => "llmd_metrics_interval 50ms;\n"
                . "    llmd_tokenizer $main::Tok;\n"
                . "    llmd_kv_events bind tcp://127.0.0.1:$main::KvPort;\n"
                . "    llmd_kv_speculative 0;")
--- init
my $pod2 = $ENV{TEST_NGINX_POD2};
my $topic = "kv\@$pod2\@m";
my $kv = sub { my $e = main::endpoints()->{$pod2} or return {}; $e->{kv} };
my $pub = kv_publisher(connect => "tcp://127.0.0.1:$main::KvPort");
my $publish = sub {
    my ($payload, $cond) = @_;
    return Llmd::Util::wait_until(10, sub {
        $pub->send($topic, $payload);
        Time::HiRes::sleep(0.05);
        return $cond->();
    });
};
$publish->(kv_batch(kv_stored([ 7001, 7002 ], undef, [ 1 .. 8 ], 4)),
           sub { $kv->()->{entries} >= 2 })
    or die "events before the reload were not indexed";
my $old = status_json()->{upstreams}[0]{metrics}{helper_pid};
Llmd::Util::reload_nginx() or die "reload failed";
Llmd::Util::wait_until(10, sub {
    my $st = status_json() or return 0;
    my $pid = $st->{upstreams}[0]{metrics}{helper_pid};
    return $pid && $pid != $old;
}) or die "no new helper after the reload";
$publish->(kv_batch(kv_stored([ 7003, 7004 ], undef, [ 11 .. 18 ], 4)),
           sub { $kv->()->{entries} >= 4 })
    or die "events after the reload were not indexed: "
           . JSON::PP->new->encode($kv->());
$pub->close;
--- request
GET /llmd/status
--- response_body_like chop
"kv_events":\{"mode":"bind",
--- no_error_log
[emerg]
cannot bind



=== TEST 6: no-hit-lru-scorer: the LRU is shared by both workers and kept across a reload (cold requests keep taking the pods in turn)
--- user_files
>>> nohit.yaml
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
- type: no-hit-lru-scorer
  parameters:
    lruSize: 16
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-scorer
    weight: 0
  - pluginRef: no-hit-lru-scorer
--- http_config eval
pods(1 .. 3) . upstream([1 .. 3], balancer => "config=../html/nohit.yaml")
--- init
wait_fresh(3) or die "metrics never became fresh";
my @seen;
my $cold = sub {
    my ($n) = @_;
    for my $i (1 .. $n) {
        my ($ep) = complete(prompt_of("cold-" . scalar(@seen)));
        push @seen, $ep;
    }
};
# 7 before the reload: a state lost there would start again at the first pod
$cold->(7);
Llmd::Util::reload_nginx() or die "reload failed";
$cold->(5);
my %first = map { $_ => 1 } @seen[0 .. 2];
die "first three cold requests not on three pods: @seen" unless keys %first == 3;
for my $i (3 .. $#seen) {
    die "cold request $i not in turn: @seen" unless $seen[$i] eq $seen[$i - 3];
}
--- request
GET /llmd/status
--- response_body_like eval
qr/"picks":4,.*"picks":4,.*"picks":4,/s



=== TEST 7: a reload keeps the zone for the same file of the module; a reload onto another file (a new build) runs that file's code, with zones of its own
--- http_config eval
pods(1 .. 3) . upstream([1 .. 3])
--- init
my $p = prompt_of("upgrade", 2048);
my (undef, $m) = main::complete($p);
die "first request matched $m" unless $m eq "0/32";
Llmd::Util::reload_nginx() or die "reload failed";
(undef, $m) = main::complete($p);
die "same file: the prefix index was not kept ($m)" unless $m eq "32/32";
my $so = main::module_copy("upgraded.so");
main::reload_with_module($so);
for my $pid (main::worker_pids()) {
    open my $maps, '<', "/proc/$pid/maps" or die "maps of $pid: $!";
    die "worker $pid has not loaded $so" unless grep { /\Q$so\E$/ } <$maps>;
}
--- request eval
"POST /v1/completions\n" . main::completion(prompt_of("upgrade", 2048))
--- response_headers_like
X-LLMD-Prefix-Match: ^0/32$
--- no_error_log
[emerg]
was replaced



=== TEST 8: a reload after the module's file was replaced under its name warns that the loaded code keeps running
--- main_config eval
"load_module " . main::module_copy("replaced.so") . ";"
--- http_config eval
pods(1, 2) . upstream([1, 2])
--- init
main::module_copy("replaced.so");
Llmd::Util::reload_nginx() or die "reload failed";
--- request eval
"POST /v1/completions\n" . main::completion("after the replacement")
--- response_body_like eval
qr/^pod[12] /
--- error_log eval
qr{\[warn\] .*ngx_http_llmd_module: "\Q$main::ModDir\E/replaced\.so" was replaced since nginx loaded it; a reload keeps the loaded code}
