package Llmd::KV;

# A fake vLLM KV-event publisher for the module's tests: ZeroMQ PUB with
# vLLM's three frames (topic, 8-byte big-endian sequence, msgpack batch)
# and a replay ROUTER, built on ZMQ::FFI and Data::MessagePack.

use strict;
use warnings;
use Exporter 'import';
use Data::MessagePack;
use ZMQ::FFI;
use ZMQ::FFI::Constants qw(ZMQ_PUB ZMQ_ROUTER ZMQ_LINGER);
use Time::HiRes ();
use Llmd::Util ();

our @EXPORT = qw(kv_stored kv_removed kv_cleared kv_batch
                 kv_publisher kv_replayer kv_status_endpoint);

my $Ctx;
my $Mp = Data::MessagePack->new->prefer_integer(1)->utf8(1);

sub ctx { $Ctx //= ZMQ::FFI->new; return $Ctx; }

# BlockStored in vLLM's array encoding: engine hashes for the full blocks of
# @$tokens (block_size each), chained from $parent (undef = root).
sub kv_stored {
    my ($hashes, $parent, $tokens, $bs, %o) = @_;
    return [ "BlockStored", [ map { 0 + $_ } @$hashes ],
             defined $parent ? 0 + $parent : undef,
             [ map { 0 + $_ } @$tokens ], 0 + $bs, undef,
             $o{medium} // "GPU", undef ];
}

sub kv_removed { return [ "BlockRemoved", [ map { 0 + $_ } @{ $_[0] } ],
                          "GPU" ]; }

sub kv_cleared { return [ "AllBlocksCleared" ]; }

sub kv_batch { return $Mp->pack([ 1700000000.5, [ @_ ], 0 ]); }

sub seq8 { return pack("Q>", $_[0]); }

# kv_publisher(connect => "tcp://127.0.0.1:5557") or (bind => ...)
package Llmd::KV::Publisher;

sub new {
    my ($class, %o) = @_;
    my $s = Llmd::KV::ctx()->socket(Llmd::KV::ZMQ_PUB());
    $s->set(Llmd::KV::ZMQ_LINGER(), 'int', 0);
    if ($o{bind}) { $s->bind($o{bind}); } else { $s->connect($o{connect}); }
    return bless { sock => $s, seq => $o{seq} // 0 }, $class;
}

# Sends one batch; returns the sequence number used.
sub send {
    my ($self, $topic, $payload, $seq) = @_;
    $seq //= $self->{seq}++;
    $self->{sock}->send_multipart([ $topic, Llmd::KV::seq8($seq), $payload ]);
    return $seq;
}

sub close { my $self = shift; $self->{sock}->close; delete $self->{sock}; }

package Llmd::KV::Replayer;

sub new {
    my ($class, $endpoint) = @_;
    my $s = Llmd::KV::ctx()->socket(Llmd::KV::ZMQ_ROUTER());
    $s->set(Llmd::KV::ZMQ_LINGER(), 'int', 0);
    $s->bind($endpoint);
    return bless { sock => $s }, $class;
}

# Waits for one replay request [id, "", seq8]; returns (id, start seq) or ().
sub request {
    my ($self, $secs) = @_;
    my $deadline = Time::HiRes::time() + $secs;
    while (Time::HiRes::time() < $deadline) {
        if ($self->{sock}->has_pollin) {
            my @f = $self->{sock}->recv_multipart;
            return ($f[0], unpack("Q>", $f[2])) if @f == 3;
        }
        Time::HiRes::sleep(0.01);
    }
    return ();
}

# Replies with batches [(seq, payload), ...] in the new (topic) form, then
# the end marker.
sub reply {
    my ($self, $id, $topic, @batches) = @_;
    for my $b (@batches) {
        $self->{sock}->send_multipart([ $id, "", $topic,
                                        Llmd::KV::seq8($b->[0]), $b->[1] ]);
    }
    $self->{sock}->send_multipart([ $id, "", "", "\xff" x 8, "" ]);
}

sub close { my $self = shift; $self->{sock}->close; delete $self->{sock}; }

package Llmd::KV;

sub kv_publisher { return Llmd::KV::Publisher->new(@_); }
sub kv_replayer { return Llmd::KV::Replayer->new(@_); }

# The kv section of one endpoint in the status JSON, by name.
sub kv_status_endpoint {
    my ($st, $name) = @_;
    return undef unless $st;
    for my $e (@{ $st->{upstreams}[0]{endpoints} }) {
        return $e->{kv} if $e->{name} eq $name;
    }
    return undef;
}

1;
