package Llmd::Fixtures;

# Fake vLLM pods and request bodies for the module's Test::Nginx tests.
# A pod is an nginx server on 127.0.0.1 that answers every request with its
# own name and serves a /metrics text the test chooses.

use strict;
use warnings;
use Exporter 'import';
use JSON::PP ();
use Time::HiRes ();
use Llmd::Ports ();
use Llmd::Util ();

our @EXPORT = qw(pod pods upstream completion chat status_json wait_fresh
                 repo_root prompt_of pod_port flaky_pod silent_server
                 endpoint_status prom_has);

# Fake pod N listens on TEST_NGINX_POD_BASE_PORT + N: the file's own block
# (Llmd::Ports) unless set.
Llmd::Ports::set_defaults();
our $BasePort = $ENV{TEST_NGINX_POD_BASE_PORT};

# "127.0.0.1:<port of pod N>" as $TEST_NGINX_POD<N> (N = 1 .. 9), for the
# sections of a block that expand environment variables.
$ENV{"TEST_NGINX_POD$_"} = "127.0.0.1:" . ($BasePort + $_) for 1 .. 9;

sub repo_root { return Llmd::Util::repo_root(); }

sub pod_port { return $BasePort + $_[0]; }

# pod(N, waiting => 0, kv => 0.1, running => 0, metrics => "raw text",
#     metrics_status => 200, body => "...")
sub pod {
    my ($n, %o) = @_;
    my $port = pod_port($n);
    my $name = $o{name} // "pod$n";
    my $metrics = $o{metrics};
    if (!defined $metrics) {
        my $w = $o{waiting} // 0;
        my $kv = $o{kv} // 0;
        my $r = $o{running} // 0;
        $metrics = join "",
          "# HELP vllm:num_requests_waiting Number of requests waiting.\\n",
          "# TYPE vllm:num_requests_waiting gauge\\n",
          "vllm:num_requests_running{engine=\\\"0\\\",model_name=\\\"m\\\"} $r\\n",
          "vllm:num_requests_waiting{engine=\\\"0\\\",model_name=\\\"m\\\"} $w\\n",
          "vllm:kv_cache_usage_perc{engine=\\\"0\\\",model_name=\\\"m\\\"} $kv\\n",
          "vllm:cache_config_info{block_size=\\\"16\\\",engine=\\\"0\\\",",
          "num_gpu_blocks=\\\"1000\\\"} 1.0\\n";
    }
    my $mstatus = $o{metrics_status} // 200;
    my $body = $o{body} // "$name \$connection_requests\\n";
    my $extra = $o{extra} // "";
    return <<"EOF";
server {
    listen 127.0.0.1:$port;
    access_log off;
    client_max_body_size 16m;
    location = /metrics {
        default_type text/plain;
        return $mstatus "$metrics";
    }
    $extra
    location / {
        return 200 "$body";
    }
}
EOF
}

sub pods { return join "", map { pod($_) } @_; }

# A pod (options of pod()) whose /metrics answers 503 while the file $down
# exists (the helper process, user nobody, must be able to stat it).
sub flaky_pod {
    my ($n, $down, %o) = @_;
    my $p = pod($n, %o);
    my $if = "if (-f $down) { return 503; }";
    $p =~ s#location = /metrics \{#location = /metrics {\n        $if#;
    return $p;
}

# A TCP server on 127.0.0.1:$port that never answers: the kernel completes
# the connections (up to its backlog) and nothing reads them. Returns the
# listening socket; it stays up until the next silent_server() on the same
# port or the end of the test.
my %Silent;
sub silent_server {
    my ($port) = @_;
    require IO::Socket::INET;
    close(delete $Silent{$port}) if $Silent{$port};
    my $s = $Silent{$port} = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $port, Listen => 128,
                                  ReuseAddr => 1)
        or die "silent server on $port: $!";
    return $s;
}

# The status entry of one endpoint ("127.0.0.1:port") of the first upstream.
sub endpoint_status {
    my ($name, $st) = @_;
    $st //= status_json() or return undef;
    my ($e) = grep { $_->{name} eq $name }
              @{ $st->{upstreams}[0]{endpoints} };
    return $e;
}

# A regex matching a Prometheus text that has every one of these lines
# (strings are whole lines, qr// match a whole line), in any order.
sub prom_has {
    my $re = join '', map {
        ref $_ ? "(?=.*^(?:$_)\$)" : "(?=.*^\Q$_\E\$)"
    } @_;
    return qr/\A$re/ms;
}

# upstream(\@pod_numbers, balancer => "config=...", extra => "keepalive 8;")
sub upstream {
    my ($nums, %o) = @_;
    my $name = $o{name} // "vllm";
    my $bal = $o{balancer} // "";
    my $servers = join "", map { "    server 127.0.0.1:" . pod_port($_)
                                 . ($o{server_args} // "") . ";\n" } @$nums;
    my $directives = $o{directives} // "llmd_metrics_interval 50ms;";
    return "upstream $name {\n    llmd_balancer $bal;\n    $directives\n"
         . $servers . ($o{extra} // "") . "}\n";
}

# A prompt of $blocks 64-character blocks, distinct per $seed.
sub prompt_of {
    my ($seed, $chars) = @_;
    $chars //= 1024;
    my $unit = "Shared system prompt $seed: you are a careful assistant. ";
    my $s = $unit x (int($chars / length($unit)) + 1);
    return substr($s, 0, $chars);
}

sub completion {
    my ($prompt, %o) = @_;
    my $model = $o{model} // "m";
    return JSON::PP->new->canonical->encode({
        model => $model, prompt => $prompt, max_tokens => 4,
        %{ $o{fields} // {} } });
}

sub chat {
    my ($system, $user, %o) = @_;
    return JSON::PP->new->canonical->encode({
        model => $o{model} // "m",
        messages => [ { role => "system", content => $system },
                      { role => "user", content => [
                          { type => "text", text => $user } ] } ],
        max_tokens => 4 });
}

sub status_json {
    my (%o) = @_;
    my $res = Llmd::Util::http_request(method => "GET",
                                       path => $o{path} // "/llmd/status",
                                       port => $o{port});
    return undef unless $res && $res->{status} == 200;
    return eval { JSON::PP->new->decode($res->{body}) };
}

# Poll the status page until $n endpoints of the first upstream report
# fresh metrics, or the deadline passes. Returns true on success.
sub wait_fresh {
    my ($n, $secs) = @_;
    return Llmd::Util::wait_until($secs // 10, sub {
        my $st = status_json() or return 0;
        my $eps = $st->{upstreams}[0]{endpoints} or return 0;
        my $fresh = grep { $_->{fresh} } @$eps;
        return $fresh >= $n;
    });
}

1;
