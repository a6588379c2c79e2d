package Llmd::Ports;

# Every test file has its own ports and its own nginx server root, so that
# `prove -j` can run files side by side (t/README.md, "Ports and server
# roots"). A file numbered NNN (t/NNN-name.t) owns the 100 ports
#
#     TEST_NGINX_PORT_BASE (default 20000) + 100 * NNN  ...  + 99
#
# laid out as: +0 nginx (TEST_NGINX_SERVER_PORT), +1 a second nginx,
# +10 + N fake pod N (TEST_NGINX_POD_BASE_PORT = +10), +30 .. +99 the file's
# own (simulators, KV-event sockets, stub servers), taken with port(OFFSET).
# Its server root is t/servroot-<file> (TEST_NGINX_SERVROOT).
#
# The variables keep overriding one file's values; set them only for a
# single file, never for `prove -j`. A file refuses to use a port someone
# else already listens on (assert_free): it fails with a message naming the
# port instead of testing a leftover process.

use strict;
use warnings;
use Cwd ();
use Exporter 'import';
use File::Basename ();
use File::Spec ();
use IO::Socket::INET ();

our @EXPORT_OK = qw(port block assert_free port_in_use);

# t/NNN-name.t -> NNN; a file without a number gets the last block.
sub file_number {
    my $name = File::Basename::basename($0);
    return $name =~ /^(\d+)-/ ? $1 + 0 : 99;
}

sub block {
    my $base = $ENV{TEST_NGINX_PORT_BASE} || 20000;
    return $base + 100 * file_number();
}

sub port {
    my ($offset) = @_;
    die "Llmd::Ports::port($offset): offsets are 0 .. 99\n"
        unless $offset =~ /^\d+$/ && $offset < 100;
    return block() + $offset;
}

# The checkout (t/lib/Llmd/Ports.pm -> ../../..).
sub repo_root {
    my $dir = File::Basename::dirname(Cwd::abs_path(__FILE__));
    return Cwd::abs_path(File::Spec->catdir($dir, '..', '..', '..'));
}

# The file's defaults, set before a Test::Nginx implementation reads them.
sub set_defaults {
    $ENV{TEST_NGINX_SERVER_PORT} //= $ENV{TEST_NGINX_PORT} // port(0);
    $ENV{TEST_NGINX_POD_BASE_PORT} //= port(10);
    (my $file = File::Basename::basename($0)) =~ s/\.t$//;
    $ENV{TEST_NGINX_SERVROOT} //= File::Spec->catdir(repo_root(), 't',
                                                     "servroot-$file");
}

# True if something accepts TCP connections on $addr:$port.
sub port_in_use {
    my ($port, $addr) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => $addr // '127.0.0.1',
                                  PeerPort => $port, Proto => 'tcp',
                                  Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# Dies unless every port (or "addr:port") is free: nothing listens there
# and it can be bound. The message names the port and what to do.
sub assert_free {
    my @busy;
    for my $p (@_) {
        my ($addr, $port) = $p =~ /^(.*):(\d+)$/ ? ($1, $2)
                                                 : ('127.0.0.1', $p);
        if (port_in_use($port, $addr)) {
            push @busy, "$addr:$port";
            next;
        }
        my $l = IO::Socket::INET->new(LocalAddr => $addr, LocalPort => $port,
                                      Proto => 'tcp', ReuseAddr => 1,
                                      Listen => 1);
        push @busy, "$addr:$port" unless $l;
        close $l if $l;
    }
    return 1 unless @busy;
    die "port(s) @busy already in use by another process (a leftover of "
        . "an interrupted run? see `ss -ltnp`); this test will not run "
        . "against it. Stop it, or move this file's ports with "
        . "TEST_NGINX_PORT_BASE\n";
}

1;
