package Llmd::DNS;

# A DNS server whose answers a test changes while it runs: starts
# tools/dns-server.py (Debian's python3-dnslib) on a free port of 127.0.0.1
# with a zone, rewrites the zone on request, and never outlives the test
# (killed by ->stop, DESTROY, END and on SIGINT/SIGTERM; the server also
# exits when its parent dies).  query() is a small UDP/TCP client for A and
# AAAA.
#
#   my $dns = Llmd::DNS->start(zone => {
#       'pods.llmd.test.' => { A => [ '127.0.0.2', '127.0.0.3' ], ttl => 1 },
#   });
#   ... resolver 127.0.0.1:$port ...
#   $dns->set_zone({ 'pods.llmd.test.' => { A => [ '127.0.0.2' ] } });
#   my $r = $dns->query('pods.llmd.test', 'A');   # { rcode, answers, ... }
#   $dns->stop;

use strict;
use warnings;
use File::Path ();
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Socket qw(AF_INET6 inet_ntop);
use Time::HiRes ();
use Llmd::Util ();

my $Python = '/usr/bin/python3';
my %Live;               # server pid => pid of the process that started it
my $HandlersSet;

my %QTYPE = (A => 1, AAAA => 28);
my %QTYPE_NAME = reverse %QTYPE;
my @RCODE = qw(NOERROR FORMERR SERVFAIL NXDOMAIN NOTIMP REFUSED);

# Llmd::DNS->start(zone => { name => { A => [...], AAAA => [...], ttl => 1,
#                  servfail => 1, delay_ms => N } }, verbose => 0,
#                  max_seconds => 600, timeout => 10)
# Dies when the server is not answering within the timeout.
sub start {
    my ($class, %o) = @_;
    my $dir = File::Temp::tempdir('llmd-dns-XXXXXX', TMPDIR => 1);
    my $self = bless { dir => $dir, zone_file => "$dir/zone.json",
                       owner => $$, mtime => 0 }, $class;
    $self->set_zone($o{zone} // {});
    _set_signal_handlers();

    my $script = Llmd::Util::repo_root() . '/tools/dns-server.py';
    my @cmd = ($Python, $script, '--zone', $self->{zone_file}, '--port', 0,
               '--max-seconds', $o{max_seconds} // 600);
    push @cmd, '--verbose' if $o{verbose};

    pipe(my $from, my $to) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        close $from;
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>&', $to) or POSIX::_exit(127);
        exec @cmd or POSIX::_exit(127);
    }
    close $to;
    $self->{pid} = $pid;
    $Live{$pid} = $$;

    # the server prints its port when it listens
    my $secs = ($o{timeout} // 10) * Llmd::Util::timeout_scale();
    my $deadline = Time::HiRes::time() + $secs;
    my $sel = IO::Select->new($from);
    my $line = '';
    while ($line !~ /\n/) {
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0 || !$sel->can_read($left);
        last unless sysread($from, $line, 64, length $line);
    }
    close $from;

    if ($line !~ /^(\d+)\n/) {
        $self->stop;
        die "Llmd::DNS: $script did not start (is python3-dnslib "
            . "installed? scripts/deps.sh installs it)\n";
    }
    $self->{port} = $1;

    # listening is not answering: wait for a reply to a query
    my $up = Llmd::Util::wait_until($secs, sub {
        defined query($self->{port}, 'ready.llmd-dns.invalid.', 'A',
                      timeout => 0.2);
    });
    if (!$up) {
        $self->stop;
        die "Llmd::DNS: the server on 127.0.0.1:$self->{port} does not "
            . "answer\n";
    }

    return $self;
}

sub port { return $_[0]{port}; }
sub pid { return $_[0]{pid}; }
sub zone_file { return $_[0]{zone_file}; }

# Replaces the zone: the server sees it at its next query.  The file is
# written aside and renamed (the server never reads half a zone), and its
# mtime is moved forward even within the file system's time granularity.
sub set_zone {
    my ($self, $zone) = @_;
    my $file = $self->{zone_file};
    my $tmp = "$file.tmp";

    open(my $fh, '>', $tmp) or die "$tmp: $!";
    print $fh JSON::PP->new->canonical->encode($zone);
    close $fh or die "$tmp: $!";

    my $now = Time::HiRes::time();
    my $mtime = $now > $self->{mtime} + 0.001 ? $now : $self->{mtime} + 0.001;
    Time::HiRes::utime($mtime, $mtime, $tmp) or die "utime $tmp: $!";
    rename($tmp, $file) or die "rename $tmp: $!";
    $self->{mtime} = $mtime;
    return $self;
}

sub query {
    my $self = shift;
    return Llmd::DNS::query($self->{port}, @_) if ref $self;
    return _query($self, @_);
}

sub alive {
    my ($self) = @_;
    return 0 unless $self->{pid};
    return waitpid($self->{pid}, POSIX::WNOHANG()) == 0 ? 1 : 0;
}

# Stops the server (TERM, then KILL after 2 s) and removes the zone.
sub stop {
    my ($self) = @_;
    return unless $self->{owner} == $$;
    my $pid = delete $self->{pid};
    if ($pid) {
        _kill($pid);
        delete $Live{$pid};
    }
    File::Path::remove_tree($self->{dir}) if $self->{dir};
    delete $self->{dir};
}

sub DESTROY {
    my ($self) = @_;
    local ($., $@, $!, $^E, $?);
    $self->stop;
}

# Only the process that started a server stops it (not a forked child).
sub _kill_all {
    _kill($_) for grep { $Live{$_} == $$ } keys %Live;
    %Live = ();
}

END {
    local $?;
    _kill_all();
}

sub _kill {
    my ($pid) = @_;
    kill 'TERM', $pid;
    my $deadline = Time::HiRes::time() + 2;
    while (waitpid($pid, POSIX::WNOHANG()) == 0) {
        if (Time::HiRes::time() > $deadline) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            last;
        }
        Time::HiRes::sleep(0.01);
    }
}

# On INT/TERM: stop the servers, then whatever handled the signal before
# (the Lite harness stops nginx) or the default action.
sub _set_signal_handlers {
    return if $HandlersSet++;
    for my $sig (qw(INT TERM)) {
        my $prev = $SIG{$sig};
        $SIG{$sig} = sub {
            _kill_all();
            if (ref $prev eq 'CODE') {
                $prev->(@_);
            }
            $SIG{$sig} = 'DEFAULT';
            kill $sig, $$;
        };
    }
}

# Llmd::DNS::query($port, $name, 'A' | 'AAAA', tcp => 0, timeout => 2)
# Returns { rcode => 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL' | ..., aa => 0|1,
# answers => [ addresses of the asked type ], ttls => [ ... ] }, or undef
# when no reply came within the timeout.
sub _query {
    my ($port, $name, $type, %o) = @_;
    my $qtype = $QTYPE{ uc($type // 'A') } // die "Llmd::DNS: type $type";
    my $timeout = $o{timeout} // 2;
    my $id = int(rand(65536));

    my $packet = pack('n6', $id, 0x0100, 1, 0, 0, 0);
    for my $label (grep { length } split /\./, $name) {
        $packet .= pack('C/a*', $label);
    }
    $packet .= pack('Cn2', 0, $qtype, 1);

    my $reply = $o{tcp} ? _exchange_tcp($port, $packet, $timeout)
                        : _exchange_udp($port, $packet, $timeout, $id);
    return undef unless defined $reply && length $reply >= 12;
    return _parse($reply, $id, $qtype);
}

sub _exchange_udp {
    my ($port, $packet, $timeout, $id) = @_;
    my $sock = IO::Socket::INET->new(Proto => 'udp', PeerAddr => '127.0.0.1',
                                     PeerPort => $port) or return undef;
    $sock->send($packet) or return undef;
    my $sel = IO::Select->new($sock);
    my $deadline = Time::HiRes::time() + $timeout;
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        return undef if $left <= 0 || !$sel->can_read($left);
        my $buf;
        # a refused port (ICMP) makes recv fail: no server
        defined $sock->recv($buf, 65535) or return undef;
        return $buf if length $buf >= 2 && unpack('n', $buf) == $id;
    }
}

sub _exchange_tcp {
    my ($port, $packet, $timeout) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port,
                                     Timeout => $timeout) or return undef;
    syswrite($sock, pack('n/a*', $packet)) or return undef;
    my $sel = IO::Select->new($sock);
    my $deadline = Time::HiRes::time() + $timeout;
    my $buf = '';
    while (length $buf < 2 || length $buf < 2 + unpack('n', $buf)) {
        my $left = $deadline - Time::HiRes::time();
        return undef if $left <= 0 || !$sel->can_read($left);
        sysread($sock, $buf, 65535, length $buf) or return undef;
    }
    return substr($buf, 2, unpack('n', $buf));
}

# Skips a (possibly compressed) name at $off; returns the offset after it.
sub _skip_name {
    my ($msg, $off) = @_;
    while ($off < length $msg) {
        my $len = ord(substr($msg, $off, 1));
        return $off + 2 if ($len & 0xc0) == 0xc0;
        return $off + 1 if $len == 0;
        $off += 1 + $len;
    }
    return $off;
}

sub _parse {
    my ($msg, $id, $qtype) = @_;
    my ($rid, $flags, $qd, $an) = unpack('n4', $msg);
    return undef unless $rid == $id && ($flags & 0x8000);

    my %r = (rcode => $RCODE[$flags & 0xf] // ($flags & 0xf),
             aa => ($flags & 0x0400) ? 1 : 0, answers => [], ttls => []);
    my $off = 12;
    for (1 .. $qd) {
        $off = _skip_name($msg, $off) + 4;
    }
    for (1 .. $an) {
        $off = _skip_name($msg, $off);
        last if $off + 10 > length $msg;
        my ($type, $class, $ttl, $len) = unpack('n2Nn', substr($msg, $off));
        my $rdata = substr($msg, $off + 10, $len);
        $off += 10 + $len;
        next unless $type == $qtype;
        push @{ $r{answers} }, $type == 1 ? join('.', unpack('C4', $rdata))
                                          : inet_ntop(AF_INET6, $rdata);
        push @{ $r{ttls} }, $ttl;
    }
    $r{type} = $QTYPE_NAME{$qtype};
    return \%r;
}

1;
