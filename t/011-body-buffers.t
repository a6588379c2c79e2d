# A request body in the buffers nginx reads it into: the part that came
# with the headers (the preread part, in the header buffer) and the rest.
# The module makes nginx read the rest right behind a copy of the preread
# part and scans the body in place; chunked bodies and bodies spilled to a
# temporary file are joined. Whatever the split, a request gets the answer
# it gets when its whole body arrives in one buffer, and the pod receives
# the body the client sent.
#
# The split is chosen exactly: nginx's first read of a request takes at
# most client_header_buffer_size (1k) bytes, so a request written at once
# with H bytes of headers has its first 1024 - H body bytes preread; a
# padding header moves that split over every byte of a body's first
# ~950 bytes. The reference answers come from a second server whose
# header buffer (64k) holds the whole request, which nginx then reads as
# one buffer. Requests on one connection follow each other (keepalive), so
# a header buffer not given back intact breaks the next request.
use lib 't/lib';
use Test::Nginx::Socket 'no_plan';
use Llmd::Fixtures;
use Llmd::Ports qw(port);
use Llmd::Util;
use IO::Select ();
use IO::Socket::INET ();
use Time::HiRes ();

$ENV{TEST_NGINX_LLMD_SO} ||= repo_root() . "/build/ngx_http_llmd_module.so";

our $Ref = port(30);
our $BodyLog = Llmd::Util::servroot() . "/logs/pod-bodies.log";

our $Proxy = <<'EOF';
        proxy_pass http://vllm;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        client_body_buffer_size 64k;
EOF

# The pod logs every body it receives (one line each: the bodies here
# hold no raw newline) and answers "pod1".
our $Pod = pod(1, extra => <<"EOF");
    location ~ completions\$ {
        client_body_buffer_size 1m;
        access_log $BodyLog llmd_body;
        rewrite ^ /answer break;
        proxy_pass http://127.0.0.1:${\ pod_port(1)};
    }
    location = /answer {
        return 200 "pod1\\n";
    }
EOF

our $HttpConfig = "log_format llmd_body escape=none '\$request_body';\n"
    . $Pod . upstream([1]) . <<"EOF";
server {
    listen 127.0.0.1:$Ref;
    client_header_buffer_size 64k;
    large_client_header_buffers 4 64k;
    client_body_temp_path ${\ Llmd::Util::servroot()}/ref_body_temp;
    location /v1/ {
$Proxy    }
}
EOF

# /spill/: bodies past client_body_buffer_size, spilled to a file there
our $Front = "client_header_buffer_size 1k;\n"
    . "location /v1/ {\n$Proxy}\n"
    . "location /spill/ {\n$Proxy"
    . "client_body_temp_path ${\ Llmd::Util::servroot()}/spill_temp;\n}\n"
    . "location = /llmd/status { llmd_status; }\n";

# Bodies written with ~ for a backslash.
sub jb { my $s = join "", @_; $s =~ s/~/\\/g; return $s; }

# escapes of every kind, raw UTF-8 (2, 3 and 4 bytes), a surrogate pair
our $E = jb('~ud83d~ude00 caf', "\xc3\xa9", ' ~"q~" ~/ ~~ ~b~f~n~r~t ',
            '~u00e9~u20AC ', "\xe2\x82\xac\xf0\x9f\x98\x80", ' 12 ');

sub completion_of {
    my ($prompt) = @_;
    return jb('{"cache_salt":"s~"1","max_tokens":4,"model":"m~u00e9",',
              '"prompt":"', $prompt, '","stream":false}');
}

our $Short = completion_of($E x 16);

# $Short with $s inserted in its prompt at the first word after offset $at
sub insert_at {
    my ($at, $s) = @_;
    my $i = index($Short, " caf", $at) + 1;
    return substr($Short, 0, $i) . $s . substr($Short, $i);
}
our $Long = completion_of(($E x 20) . prompt_of("split", 32768));
our $Chat = jb('{"messages":[{"role":"system","content":"', $E x 8,
               '"},{"role":"user","content":[{"type":"text","text":"',
               $E x 8, '"}]}],"model":"m"}');
our $Spilled = completion_of(($E x 20) . prompt_of("spill", 204800));

# [ name, path, body, status ]
our @Bodies = (
    [ "short", "/v1/completions", $Short, 200 ],
    [ "long", "/v1/completions", $Long, 200 ],
    [ "chat", "/v1/chat/completions", $Chat, 200 ],
    (map { [ "cut at $_", "/v1/completions", substr($Short, 0, $_), 400 ] }
         100, 333, 600, length($Short) - 1),
    [ "bad escape", "/v1/completions", insert_at(500, jb('~x')), 400 ],
    [ "lone low surrogate", "/v1/completions", insert_at(400, jb('~udc00')),
      400 ],
    [ "number prompt", "/v1/completions",
      '{"model":"m","prompt":' . (" " x 700) . '12}', 400 ],
    [ "trailing junk", "/v1/completions", "$Short x", 400 ],
    [ "chat content number", "/v1/chat/completions",
      jb('{"messages":[{"role":"user","content":"', $E x 12, '"},',
         '{"role":"user","content":7}],"model":"m"}'), 400 ],
);

our (@Sent, $Sock, $SockPort);

sub read_more {
    my ($s, $buf, $deadline) = @_;
    my $left = $deadline - Time::HiRes::time();
    die "no answer in time\n"
        unless $left > 0 && IO::Select->new($s)->can_read($left);
    my $n = sysread($s, $$buf, 65536, length $$buf);
    die "connection closed: $!\n" unless $n;
}

# One request on the open connection to $port (opened again when the
# server closed it); returns "status content-type\nbody".
sub exchange {
    my ($port, $req) = @_;
    if (!$Sock || $SockPort != $port) {
        $Sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
            PeerPort => $port, Timeout => 5) or die "connect $port: $!\n";
        $SockPort = $port;
    }
    my $deadline = Time::HiRes::time()
                   + 10 * Llmd::Util::timeout_scale();
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($Sock, $req, length($req) - $off, $off);
        die "write: $!\n" unless defined $n;
        $off += $n;
    }
    my $buf = "";
    read_more($Sock, \$buf, $deadline) until $buf =~ /\r\n\r\n/;
    my ($head, $rest) = split /\r\n\r\n/, $buf, 2;
    my ($status) = $head =~ m{^HTTP/1\.1 (\d+)} or die "bad answer: $head\n";
    my ($len) = $head =~ /^Content-Length: *(\d+)/mi
        or die "answer without Content-Length: $head\n";
    read_more($Sock, \$rest, $deadline) while length($rest) < $len;
    my ($type) = $head =~ /^Content-Type: *([^\r\n]*)/mi;
    if ($head =~ /^Connection: close/mi) {
        close $Sock;
        undef $Sock;
    }
    return "$status " . ($type // "") . "\n" . substr($rest, 0, $len);
}

# The request with its first $preread body bytes in nginx's first read.
sub split_head {
    my ($path, $body) = @_;
    return "POST $path HTTP/1.1\r\nHost: x\r\nContent-Length: "
         . length($body) . "\r\nX-Pad: ";
}

sub split_request {
    my ($path, $body, $preread) = @_;
    my $head = split_head($path, $body);
    my $pad = 1024 - $preread - length($head) - 4;
    die "split $preread cannot be made\n" if $pad < 0;
    return "$head" . ("p" x $pad) . "\r\n\r\n$body";
}

# The longest preread part split_request() can make of this body.
sub max_preread {
    my ($path, $body) = @_;
    my $max = 1024 - length(split_head($path, $body)) - 4;
    return $max < length $body ? $max : length $body;
}

sub plain_request {
    my ($path, $body) = @_;
    return "POST $path HTTP/1.1\r\nHost: x\r\nContent-Length: "
         . length($body) . "\r\n\r\n$body";
}

sub chunked_request {
    my ($path, $body, $size) = @_;
    my $req = "POST $path HTTP/1.1\r\nHost: x\r\n"
            . "Transfer-Encoding: chunked\r\n\r\n";
    for (my $i = 0; $i < length $body; $i += $size) {
        my $c = substr($body, $i, $size);
        $req .= sprintf("%x\r\n", length $c) . "$c\r\n";
    }
    return "${req}0\r\n\r\n";
}

# The reference answer of a body, checked against the status it must have.
sub reference {
    my ($name, $path, $body, $status) = @_;
    my $want = exchange($Ref, plain_request($path, $body));
    push @Sent, $body if $status == 200;
    my ($got) = $want =~ /^(\d+)/;
    die "$name: reference answer $want, not $status\n" if $got != $status;
    die "$name: reference answer is not the pod's: $want\n"
        if $status == 200 && $want ne "200 text/plain\npod1\n";
    die "$name: reference answer is not an OpenAI error: $want\n"
        if $status == 400 && $want !~ /^400[ ]application\/json\n
            \{"error":\{"message":"[^"]+","type":"BadRequestError",
            "param":null,"code":400\}\}\n?\z/x;
    return $want;
}

sub check {
    my ($name, $body, $status, $want, $req) = @_;
    my $got = exchange(Llmd::Util::server_port(), $req);
    push @Sent, $body if $status == 200;
    die "$name: answer\n$got\nnot the reference\n$want\n" if $got ne $want;
}

# Every body the pod logged, against the bodies sent to it in order.
sub check_pod_bodies {
    my @got;
    Llmd::Util::wait_until(5, sub {
        open my $fh, "<", $BodyLog or return 0;
        local $/ = "\n";
        @got = map { chomp; $_ } <$fh>;
        return @got >= @Sent;
    });
    die "the pod logged " . scalar(@got) . " bodies, " . scalar(@Sent)
        . " were sent\n" if @got != @Sent;
    for my $i (0 .. $#Sent) {
        die "body $i reached the pod changed (" . length($got[$i])
            . " bytes, sent " . length($Sent[$i]) . ")\n"
            if $got[$i] ne $Sent[$i];
    }
}

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value("main_config", "load_module $ENV{TEST_NGINX_LLMD_SO};")
        unless defined $block->main_config;
    $block->set_value("http_config", $main::HttpConfig)
        unless defined $block->http_config;
    $block->set_value("config", $main::Front)
        unless defined $block->config;
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a body split after every one of its first ~950 bytes gets the answer of the whole body, and the pod receives it unchanged
--- init
wait_fresh(1) or die "metrics never became fresh";
@main::Sent = ();
undef $main::Sock;
for my $b (@main::Bodies) {
    my ($name, $path, $body, $status) = @$b;
    my $want = main::reference(@$b);
    for my $preread (1 .. main::max_preread($path, $body)) {
        main::check("$name, split at $preread", $body, $status, $want,
                    main::split_request($path, $body, $preread));
    }
}
main::check_pod_bodies();
--- request
GET /llmd/status
--- response_body_like: "rejected_bad_request":(\d+),
--- no_error_log
[error]
[alert]
--- timeout: 120



=== TEST 2: chunked bodies (chunk borders inside escapes, UTF-8 and keys) and a body spilled to a temporary file (past client_body_buffer_size, also when split) are joined: the answer of the whole body, the body unchanged at the pod
--- init
wait_fresh(1) or die "metrics never became fresh";
@main::Sent = ();
undef $main::Sock;
for my $b (@main::Bodies[0 .. 3, 7, 8, 10, 11]) {
    my ($name, $path, $body, $status) = @$b;
    my $want = main::reference(@$b);
    for my $size (1, 2, 3, 5, 7, 64, 1000, 4096) {
        main::check("$name, chunks of $size", $body, $status, $want,
                    main::chunked_request($path, $body, $size));
    }
}
my @spilled = ("spilled", "/v1/completions", $main::Spilled, 200);
my $want = main::reference(@spilled);
for my $preread (1, 2, 100, 500, 900) {
    main::check("spilled, split at $preread", $main::Spilled, 200, $want,
                main::split_request("/spill/v1/completions",
                                    $main::Spilled, $preread));
}
main::check("spilled, chunks of 3000", $main::Spilled, 200, $want,
            main::chunked_request("/v1/completions", $main::Spilled, 3000));
main::check_pod_bodies();
--- request
GET /llmd/status
--- response_body_like: "rejected_bad_request":\d+,
--- grep_error_log eval
qr{buffered to a temporary file \S*/spill_temp/}
--- grep_error_log_out eval
qr{\A(?:buffered to a temporary file \S*/spill_temp/\n){5}\z}
--- no_error_log
[alert]
--- timeout: 60
