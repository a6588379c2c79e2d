package Llmd::Util;

# Helpers for the prove suite: plain HTTP requests to the nginx under test,
# polling with a deadline, and a look at the nginx processes of the current
# server root (for the tests that kill the helper or reload the master).
# Everything talks to 127.0.0.1 only and every wait is bounded.

use strict;
use warnings;
use Exporter 'import';
use Cwd ();
use File::Basename ();
use File::Spec ();
use HTTP::Tiny ();
use Time::HiRes ();
use Llmd::Ports ();

# Nothing by default: Llmd::Fixtures exports repo_root already and the tests
# call these helpers fully qualified.
our @EXPORT_OK = qw(repo_root servroot server_port timeout_scale http_request
                    wait_until nginx_master_pid master_pid nginx_children
                    worker_pids reload_nginx);

my $RepoRoot;

# The checkout this file belongs to (t/lib/Llmd/Util.pm -> ../../..).
sub repo_root {
    if (!defined $RepoRoot) {
        my $dir = File::Basename::dirname(Cwd::abs_path(__FILE__));
        $RepoRoot = Cwd::abs_path(File::Spec->catdir($dir, '..', '..', '..'));
    }
    return $RepoRoot;
}

# The server root of the running test harness.  The Lite harness and the
# real Test::Nginx both keep it in a package variable; outside a harness it
# is the file's own t/servroot-<file> (Llmd::Ports).
sub servroot {
    no warnings 'once';
    return $Test::Nginx::Socket::Lite::ServRoot
        // $Test::Nginx::Util::ServRoot
        // $ENV{TEST_NGINX_SERVROOT}
        // do { Llmd::Ports::set_defaults(); $ENV{TEST_NGINX_SERVROOT} };
}

sub server_port {
    no warnings 'once';
    return $Test::Nginx::Socket::Lite::ServerPort
        // $Test::Nginx::Util::ServerPort
        // $ENV{TEST_NGINX_SERVER_PORT} // $ENV{TEST_NGINX_PORT}
        // Llmd::Ports::port(0);
}

# Every deadline is multiplied by this: nginx under valgrind is ~20x slower.
sub timeout_scale {
    return $ENV{TEST_NGINX_TIMEOUT_SCALE}
        || ($ENV{TEST_NGINX_USE_VALGRIND} ? 10 : 1);
}

# http_request(method => "POST", path => "/v1/completions", body => $json,
#              addr => "127.0.0.2" (default 127.0.0.1),
#              port => 1984, host => "localhost", headers => {...},
#              timeout => 5)
# Returns { status, reason, headers => { lower-case name => value }, body }.
# A connection failure or timeout is status 599 with the reason in body, as
# HTTP::Tiny reports it.
sub http_request {
    my (%o) = @_;
    my $method = uc($o{method} // 'GET');
    my $port = $o{port} // server_port();
    my $path = $o{path} // '/';
    $path = "/$path" unless $path =~ m{^/};
    my $timeout = ($o{timeout} // 5) * timeout_scale();
    my %headers = %{ $o{headers} // {} };
    $headers{Host} = $o{host} if defined $o{host};

    my $http = HTTP::Tiny->new(timeout => $timeout, keep_alive => 0,
                               max_redirect => 0,
                               agent => 'llmd-test/1');
    my %args = (headers => \%headers);
    $args{content} = $o{body} if defined $o{body};

    my $addr = $o{addr} // '127.0.0.1';
    my $res = $http->request($method, "http://$addr:$port$path", \%args);
    my %h;
    while (my ($k, $v) = each %{ $res->{headers} // {} }) {
        $h{lc $k} = ref $v eq 'ARRAY' ? join(', ', @$v) : $v;
    }
    return { status => $res->{status}, reason => $res->{reason},
             headers => \%h, body => $res->{content} // '' };
}

# wait_until($seconds, sub { ... }): call the code every 50 ms until it
# returns true (then return true) or the deadline passes (return false).
# The code is always called at least once, and once more at the deadline.
sub wait_until {
    my ($secs, $code) = @_;
    my $deadline = Time::HiRes::time() + $secs * timeout_scale();
    while (1) {
        return 1 if $code->();
        my $left = $deadline - Time::HiRes::time();
        if ($left <= 0) {
            return $code->() ? 1 : 0;
        }
        Time::HiRes::sleep($left < 0.05 ? $left : 0.05);
    }
}

sub _pid_alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    # A zombie nobody reaped is not running.
    open my $fh, '<', "/proc/$pid/stat" or return 1;
    my $stat = <$fh> // '';
    return $stat =~ /\)\s+Z\s/ ? 0 : 1;
}

# The pid in the server root's pid file if that process is alive: the master
# with master_on(), the only nginx process with master_off().
sub nginx_master_pid {
    my $file = File::Spec->catfile(servroot(), 'logs', 'nginx.pid');
    open my $fh, '<', $file or return undef;
    my $pid = <$fh>;
    return undef unless defined $pid && $pid =~ /^\s*(\d+)\s*$/;
    $pid = $1;
    return _pid_alive($pid) ? $pid : undef;
}

sub master_pid { return nginx_master_pid(); }

sub _proc_title {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/cmdline" or return undef;
    local $/;
    my $cmd = <$fh> // '';
    # nginx overwrites argv with its title; the rest is NULs or spaces.
    $cmd =~ s/\0+/ /g;
    $cmd =~ s/\s+$//;
    return $cmd unless $cmd =~ /^\S*valgrind/;
    # Under valgrind the title nginx sets is not visible in /proc; its
    # "setproctitle" debug message in the error log is.
    my $log = File::Spec->catfile(servroot(), 'logs', 'error.log');
    open my $lf, '<', $log or return '';
    my $all = <$lf> // '';    # $/ is undef here: the whole log
    my @set = $all =~ /\[debug\] $pid#\d+: setproctitle: "([^"]*)"/g;
    return @set ? $set[-1] : '';
}

sub _proc_ppid {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return undef;
    my $stat = <$fh> // '';
    # pid (comm) state ppid ...; comm may contain spaces and parentheses.
    return $stat =~ /\)\s+(\S)\s+(\d+)/ && $1 ne 'Z' ? $2 : undef;
}

# The live children of the nginx master as ({ pid => ..., title => ... }),
# the title being the process title ("nginx: worker process", "nginx: cache
# manager process", ...).  Empty if nginx is not running.
sub nginx_children {
    my ($master) = @_;
    $master //= nginx_master_pid() or return ();
    my @kids;
    opendir my $dh, '/proc' or return ();
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my $ppid = _proc_ppid($pid);
        next unless defined $ppid && $ppid == $master;
        my $title = _proc_title($pid);
        next unless defined $title;
        push @kids, { pid => $pid + 0, title => $title };
    }
    closedir $dh;
    return sort { $a->{pid} <=> $b->{pid} } @kids;
}

# Pids of the worker processes, including ones shutting down after a reload.
sub worker_pids {
    return map { $_->{pid} }
           grep { $_->{title} =~ /worker process/ } nginx_children();
}

# Send HUP to the master and wait until the worker processes are all new
# ones and the old ones have exited.  Returns true on success.
sub reload_nginx {
    my ($secs) = @_;
    my $master = nginx_master_pid() or return 0;
    my %old = map { $_ => 1 } worker_pids();
    my $count = keys %old;
    kill 'HUP', $master or return 0;
    return wait_until($secs // 10, sub {
        my @now = worker_pids();
        return @now == $count && !grep { $old{$_} } @now;
    });
}

1;
