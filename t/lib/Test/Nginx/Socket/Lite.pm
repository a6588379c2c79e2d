package Test::Nginx::Socket::Lite;

# A small re-implementation of the part of Test::Nginx::Socket this project's
# tests use, on Debian's Test::Base (Test::Nginx is not packaged for Debian).
# t/lib/Test/Nginx/Socket.pm loads it when no real Test::Nginx is installed;
# t/README.md lists what it supports and where it deliberately differs.
#
# For each block: a fresh server root is written (conf/nginx.conf, html/ with
# the user files), nginx is started daemonised with -p servroot, the test
# waits for the listen port, runs --- init, sends the requests one after
# another on fresh connections, stops nginx (QUIT, then KILL after a deadline)
# and only then reads the error log, so every line nginx wrote for the block
# is there without sleeping for it.

use strict;
use warnings;
use Test::Base -base;

use Cwd ();
use Errno ();
use File::Basename ();
use File::Path ();
use File::Spec ();
use IO::Select ();
use IO::Socket::INET ();
use List::Util ();
use POSIX ();
use Time::HiRes ();

our @EXPORT = qw(run_tests no_shuffle master_on master_off workers
                 worker_connections add_block_preprocessor log_level
                 repeat_each no_long_string env_to_nginx no_root_location
                 server_port server_root html_dir bail_out);

our $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT}
                  || 1984;
our $ServRoot = $ENV{TEST_NGINX_SERVROOT}
                || File::Spec->catdir(Cwd::getcwd(), 't', 'servroot');
our $NginxBinary = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $UseValgrind = $ENV{TEST_NGINX_USE_VALGRIND};
# TEST_NGINX_ASAN=1: the module was built with ASan and UBSan (make ...
# SAN=address); nginx is started with their runtimes preloaded.
our $UseAsan = $ENV{TEST_NGINX_ASAN};
our $TimeoutScale = $ENV{TEST_NGINX_TIMEOUT_SCALE}
                    || ($UseValgrind ? 10 : 1);
our $Timeout = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $LogLevel = 'debug';
our $Workers = 1;
our $WorkerConnections = 1024;
our $MasterProcess = 'off';
our $RepeatEach = 1;
our $NoShuffle = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $NoRootLocation = 0;
our $Verbose = $ENV{TEST_NGINX_VERBOSE} || 0;
our @EnvToNginx;
our @BlockPreprocessors;

# The nginx we started and have not stopped yet: its pid (the daemon's pid
# from the pid file, or our child under valgrind) and the children it had.
my $Running;

sub no_shuffle { $NoShuffle = 1 }
sub master_on { $MasterProcess = 'on' }
sub master_off { $MasterProcess = 'off' }
sub workers { $Workers = shift }
sub worker_connections { $WorkerConnections = shift }
sub log_level { $LogLevel = shift }
sub repeat_each { $RepeatEach = shift if @_; return $RepeatEach }
sub no_long_string { }    # Test::Base's is() already prints plain strings
sub env_to_nginx { push @EnvToNginx, @_ }
sub no_root_location { $NoRootLocation = 1 }
sub server_port { $ServerPort = shift if @_; return $ServerPort }
sub server_root { return $ServRoot }
sub html_dir { return File::Spec->catdir($ServRoot, 'html') }

# Like Test::Nginx: the handler added last runs first.
sub add_block_preprocessor { unshift @BlockPreprocessors, shift }

sub bail_out {
    stop_nginx();
    Test::More::BAIL_OUT(join '', @_);
}

sub pid_file { File::Spec->catfile($ServRoot, 'logs', 'nginx.pid') }
sub error_log_file { File::Spec->catfile($ServRoot, 'logs', 'error.log') }
sub stderr_file { File::Spec->catfile($ServRoot, 'logs', 'stderr.log') }

sub verbose { warn "# ", @_, "\n" if $Verbose }

# Sanitizer runtimes to preload into nginx: TEST_NGINX_PRELOAD (paths
# separated by spaces or colons), else libasan and libubsan of the compiler
# that built the module ($CC, default cc).  Debian's nginx is not
# instrumented, and ASan refuses to start unless its runtime is loaded
# first.
sub sanitizer_preload {
    my @libs = split /[\s:]+/, $ENV{TEST_NGINX_PRELOAD} // '';
    if (!@libs) {
        my $cc = $ENV{CC} || 'cc';
        for my $lib (qw(libasan.so libubsan.so)) {
            chomp(my $path = `$cc -print-file-name=$lib` // '');
            push @libs, $path;
        }
    }
    for my $lib (grep { length } @libs) {
        die "TEST_NGINX_ASAN: no sanitizer runtime $lib (set "
            . "TEST_NGINX_PRELOAD)\n" unless $lib =~ m{/} && -e $lib;
    }
    return join ':', grep { length } @libs;
}

# The environment of an nginx running the sanitized module.  Leak detection
# is off: nginx does not free its pools before a process exits, and those
# leaks are not ours.  A report ends the process (ASan's aborts it) and is
# written to nginx's stderr, i.e. the block's error.log once nginx has
# opened it, logs/stderr.log before (check_sanitizer).  Options already in
# ASAN_OPTIONS / UBSAN_OPTIONS come last, so they win.
my $SanitizerPreload;

sub sanitizer_env {
    $SanitizerPreload //= sanitizer_preload();
    my %env = (
        LD_PRELOAD => $SanitizerPreload,
        ASAN_OPTIONS => 'detect_leaks=0:abort_on_error=1',
        UBSAN_OPTIONS => 'print_stacktrace=1:abort_on_error=1',
    );
    for my $k (keys %env) {
        $env{$k} .= ":$ENV{$k}"
            if defined $ENV{$k} && length $ENV{$k};
    }
    return %env;
}

# A section's value.  Always in scalar context: Test::Base answers an
# absent section with an empty list, which would shift function arguments.
sub sec {
    my ($block, $section) = @_;
    my $v = $block->$section;
    return $v;
}

# ---------------------------------------------------------------------------
# Cleanup: whatever happens, the nginx we started does not outlive the test.

END {
    my $status = $?;
    stop_nginx() if $Running;
    $? = $status;
}

for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub {
        stop_nginx() if $Running;
        $SIG{$sig} = 'DEFAULT';
        kill $sig, $$;
    };
}

# ---------------------------------------------------------------------------
# Small utilities.

sub parse_time {
    my ($t) = @_;
    return undef unless defined $t;
    $t =~ s/^\s+|\s+$//g;
    return $1 / 1000 if $t =~ /^(\d+(?:\.\d*)?)ms$/;
    return $1 if $t =~ /^(\d+(?:\.\d*)?)s?$/;
    return undef;
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return undef;
    local $/;
    my $s = <$fh>;
    return $s // '';
}

sub spew {
    my ($file, $content) = @_;
    my (undef, $dir) = File::Spec->splitpath($file);
    File::Path::make_path($dir) if length $dir && !-d $dir;
    open my $fh, '>', $file or die "cannot write $file: $!\n";
    binmode $fh;
    print $fh $content;
    close $fh or die "cannot write $file: $!\n";
}

# $TEST_NGINX_FOO in a section is replaced by $ENV{TEST_NGINX_FOO}, as
# Test::Nginx does; an unset variable is an error.
sub expand_env {
    my ($text) = @_;
    return $text unless defined $text && !ref $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        defined $ENV{$1} ? $ENV{$1}
                         : die "no environment variable $1 is defined\n"
    }ge;
    return $text;
}

sub pid_alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    my $stat = slurp("/proc/$pid/stat") // return 1;
    return $stat =~ /\)\s+Z\s/ ? 0 : 1;
}

sub read_pid_file {
    my $s = slurp(pid_file()) // return undef;
    return $s =~ /^\s*(\d+)\s*$/ ? $1 : undef;
}

sub children_of {
    my ($ppid) = @_;
    my @kids;
    opendir my $dh, '/proc' or return ();
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my $stat = slurp("/proc/$pid/stat") // next;
        push @kids, $pid if $stat =~ /\)\s+\S\s+(\d+)/ && $1 == $ppid;
    }
    return @kids;
}

sub port_open {
    my ($port) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, Proto => 'tcp',
                                     Timeout => 1);
    return 0 unless $sock;
    close $sock;
    return 1;
}

sub wait_for {
    my ($secs, $code) = @_;
    my $deadline = Time::HiRes::time() + $secs;
    while (1) {
        return 1 if $code->();
        return 0 if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.02);
    }
}

sub tail {
    my ($text, $n) = @_;
    return '' unless defined $text;
    # Without debug messages, and the continuation lines of multi-line ones.
    my ($in_debug, @l) = (0);
    for my $line (split /\n/, $text) {
        if ($line =~ m{^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\]}) {
            $in_debug = $1 eq 'debug';
        }
        push @l, $line unless $in_debug;
    }
    @l = @l[-$n .. -1] if @l > $n;
    return join("\n", @l) . "\n";
}

# ---------------------------------------------------------------------------
# Server root and configuration.

sub setup_servroot {
    File::Path::remove_tree($ServRoot) if -e $ServRoot;
    for my $d (qw(conf logs html client_body_temp proxy_temp fastcgi_temp
                  uwsgi_temp scgi_temp)) {
        File::Path::make_path(File::Spec->catdir($ServRoot, $d));
    }
}

# --- user_files: ">>> name" lines start a file, its content follows; or an
# eval'd array of [name, content] pairs.
sub write_user_files {
    my ($block) = @_;
    my $files = sec($block, "user_files");
    return unless defined $files;
    my @pairs;
    if (ref $files eq 'ARRAY') {
        @pairs = map { [ $_->[0], $_->[1] ] } @$files;
    } else {
        my $cur;
        for my $line (split /^/, $files) {
            if ($line =~ /^>>>\s+(\S+)/) {
                push @pairs, $cur = [ $1, '' ];
            } elsif ($cur) {
                $cur->[1] .= $line;
            } elsif ($line =~ /\S/) {
                die "--- user_files must start with a \">>> name\" line\n";
            }
        }
    }
    for my $p (@pairs) {
        my ($name, $content) = @$p;
        die "user file name \"$name\" leaves the html directory\n"
            if $name =~ m{(^|/)\.\.(/|$)} || $name =~ m{^/};
        spew(File::Spec->catfile(html_dir(), $name), expand_env($content));
    }
}

sub write_config {
    my ($block) = @_;
    my $main = expand_env($block->main_config // '');
    my $http = expand_env($block->http_config // '');
    my $config = expand_env($block->config // '');
    my $daemon = $UseValgrind ? 'off' : 'on';
    # Kept for the workers, as Test::Nginx does (sanitizer runs need them).
    my $envs = join '', map { "env $_;\n" }
        qw(LD_PRELOAD LD_LIBRARY_PATH ASAN_OPTIONS UBSAN_OPTIONS), @EnvToNginx;
    my $temp = '';
    for my $t (qw(client_body proxy fastcgi uwsgi scgi)) {
        next if $http =~ /\b${t}_temp_path\b/;
        $temp .= "    ${t}_temp_path $ServRoot/${t}_temp;\n";
    }
    my $root = $NoRootLocation ? '' : <<"EOF";
        location / {
            root $ServRoot/html;
            index index.html index.htm;
        }
EOF
    spew(File::Spec->catfile($ServRoot, 'conf', 'nginx.conf'), <<"EOF");
# written by Test::Nginx::Socket::Lite for "${\ $block->name }"
worker_processes $Workers;
daemon $daemon;
master_process $MasterProcess;
error_log $ServRoot/logs/error.log $LogLevel;
pid $ServRoot/logs/nginx.pid;
$envs
$main

http {
    access_log $ServRoot/logs/access.log;
$temp    default_type text/plain;
    keepalive_timeout 68;

$http

    server {
        listen 127.0.0.1:$ServerPort;
        server_name localhost;
        client_max_body_size 30M;

$config

$root    }
}

events {
    accept_mutex off;
    worker_connections $WorkerConnections;
}
EOF
}

# ---------------------------------------------------------------------------
# Starting and stopping nginx.

# A stale nginx of this server root (a previous run that was killed) is
# stopped before anything else; anything else on our port is an error.
# Only an nginx started with "-p <this server root>/" is touched: each test
# file has its own server root (Llmd::Ports), so files running side by side
# (prove -j) never stop each other's nginx.
sub clear_stale_nginx {
    my $pid = read_pid_file();
    if ($pid && pid_alive($pid)) {
        # the master's title is "nginx: master process nginx ... -p DIR/ ..."
        my @argv = split /[\0\s]+/, slurp("/proc/$pid/cmdline") // "";
        my ($prefix) = map { $argv[$_ + 1] }
                       grep { $argv[$_] eq '-p' } 0 .. $#argv - 1;
        if (defined $prefix && $prefix eq "$ServRoot/") {
            warn "# stopping a stale nginx (pid $pid) of $ServRoot\n";
            $Running = { pid => $pid, kids => [ children_of($pid) ] };
            stop_nginx();
        }
    }
}

sub nginx_command {
    my ($must_die) = @_;
    my @cmd = ($NginxBinary, '-e', error_log_file(), '-p', "$ServRoot/",
               '-c', File::Spec->catfile($ServRoot, 'conf', 'nginx.conf'));
    return @cmd unless $UseValgrind;
    # Memory errors only by default: nginx does not free what its worker
    # processes allocate before they exit, so leak reports are mostly
    # nginx's own.  TEST_NGINX_USE_VALGRIND=leak adds definite leaks (most
    # useful with master_off: valgrind.supp covers that exit path).
    my @vg = ('valgrind', '-q', '--tool=memcheck', '--num-callers=30',
              '--track-origins=yes',
              "--log-file=$ServRoot/logs/valgrind.%p.log");
    push @vg, $UseValgrind eq 'leak'
              ? ('--leak-check=full', '--show-leak-kinds=definite',
                 '--errors-for-leak-kinds=definite')
              : ('--leak-check=no');
    my $supp = File::Spec->catfile(File::Basename::dirname(__FILE__), '..',
                                   'valgrind.supp');
    push @vg, "--suppressions=$supp" if -f $supp;
    push @vg, "--suppressions=$ENV{TEST_NGINX_VALGRIND_SUPP}"
        if $ENV{TEST_NGINX_VALGRIND_SUPP};
    # TEST_NGINX_USE_VALGRIND="--leak-check=no ..." replaces our options.
    @vg = ('valgrind', split(' ', $UseValgrind),
           "--log-file=$ServRoot/logs/valgrind.%p.log")
        if $UseValgrind =~ /^\s*-/;
    # nginx does not free its pools when it refuses a configuration.
    push @vg, '--leak-check=no' if $must_die;
    return (@vg, @cmd);
}

sub spawn {
    my @cmd = @_;
    my %env = $UseAsan ? sanitizer_env() : ();
    verbose(join ' ', 'running:', (map { "$_=$env{$_}" } sort keys %env),
            @cmd);
    my $pid = fork;
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>>', stderr_file();
        # nginx runs in its own process group so that a Ctrl-C in the
        # terminal reaches us, and we stop nginx cleanly.
        POSIX::setpgid(0, 0);
        # Only nginx gets the sanitizer runtimes, not this harness.
        @ENV{keys %env} = values %env;
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        print STDERR "cannot run $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    return $pid;
}

# Returns (status, message): status "up" (nginx is running and listening),
# or "exit" with the exit code of a command that failed to start nginx, or
# "error" with a message.
sub start_nginx {
    my ($block) = @_;
    my $start_timeout = 10 * $TimeoutScale;

    if (port_open($ServerPort)) {
        return ('error', "port $ServerPort is already in use (another test "
                . "run?); set TEST_NGINX_SERVER_PORT to use another one");
    }
    my $child = spawn(nginx_command(defined sec($block, "must_die")));
    my $deadline = Time::HiRes::time() + $start_timeout;

    if (!$UseValgrind) {
        # Daemonised: the command exits 0 once the daemon is forked, or
        # non-zero when the configuration is refused.
        my $r;
        while (($r = waitpid($child, POSIX::WNOHANG())) == 0) {
            if (Time::HiRes::time() > $deadline) {
                kill 'KILL', $child;
                waitpid($child, 0);
                return ('error', "nginx did not start within "
                        . "${start_timeout}s");
            }
            Time::HiRes::sleep(0.01);
        }
        my $status = $?;
        return ('exit', $status >> 8, $status) if $status != 0;
        my $pid;
        wait_for($start_timeout, sub { $pid = read_pid_file() })
            or return ('error', "nginx wrote no pid file");
        $Running = { pid => $pid, kids => [] };
    } else {
        # Under valgrind nginx runs in the foreground as our child.
        $Running = { pid => $child, child => 1, kids => [] };
    }

    my $up = wait_for($start_timeout, sub {
        if ($Running->{child}) {
            my $r = waitpid($child, POSIX::WNOHANG());
            if ($r == $child) {
                $Running->{exit} = $?;
                return 1;
            }
        } elsif (!pid_alive($Running->{pid})) {
            $Running->{exit} = -1;
            return 1;
        }
        return read_pid_file() && port_open($ServerPort);
    });
    if (defined(my $status = $Running->{exit})) {
        undef $Running;
        return ('exit', $status >> 8, $status) if $status > 0;
        return ('error', "nginx exited right after starting");
    }
    if (!$up) {
        stop_nginx();
        return ('error', "nginx is not listening on 127.0.0.1:$ServerPort "
                . "after ${start_timeout}s");
    }
    if (!wait_settled($Running->{pid}, $start_timeout)) {
        stop_nginx();
        return ('error', "the nginx master did not finish starting its "
                . "processes within ${start_timeout}s");
    }
    $Running->{kids} = [ children_of($Running->{pid}) ];
    return ('up');
}

# The title nginx gave a process.  Under valgrind nginx's setproctitle
# changes the guest's argv only, so the title is taken from the process's
# last "setproctitle" debug message instead.
sub proc_title {
    my ($pid) = @_;
    my $t = slurp("/proc/$pid/cmdline") // return '';
    $t =~ s/\0+/ /g;
    return $t unless $t =~ /^\S*valgrind/;
    my @set = (slurp(error_log_file()) // '')
              =~ /\[debug\] $pid#\d+: setproctitle: "([^"]*)"/g;
    return @set ? $set[-1] : '';
}

# With a master, the processes it forks at startup (workers, cache manager
# and loader, a module's own) are up once the master waits for signals
# ("sigsuspend" in its debug log) and every child has set its own process
# title (until then it still shows the master's).  Tests that look at the
# processes (Llmd::Util::nginx_children) can then rely on them.
sub wait_settled {
    my ($master, $secs) = @_;
    return 1 unless $MasterProcess eq 'on';
    my $suspended = qr/\[debug\] $master#$master: sigsuspend$/m;
    return wait_for($secs, sub {
        my @titles = map { proc_title($_) } children_of($master);
        return 0 if grep { /master process/ } @titles;
        return 0 if $Workers =~ /^\d+$/
                    && $Workers > grep { /worker process/ } @titles;
        return 1 unless $LogLevel eq 'debug';
        return (slurp(error_log_file()) // '') =~ $suspended;
    });
}

# QUIT (graceful), then KILL for the master and the children it had if it is
# not gone by the deadline.  Returns an error message if it had to kill.
sub stop_nginx {
    my $run = $Running or return undef;
    undef $Running;
    my $pid = $run->{pid};
    my @kids = (@{ $run->{kids} }, children_of($pid));
    my $gone = sub {
        waitpid($pid, POSIX::WNOHANG()) if $run->{child};
        return !pid_alive($pid) && !grep { pid_alive($_) } @kids;
    };
    kill 'QUIT', $pid;
    my $deadline = $UseValgrind ? 60 : 10;
    return undef if wait_for($deadline, $gone);
    kill 'KILL', $pid, grep { pid_alive($_) } @kids;
    wait_for(5, $gone);
    return "nginx (pid $pid) did not exit within ${deadline}s of QUIT "
           . "and was killed";
}

# ---------------------------------------------------------------------------
# HTTP.

# "METHOD URI [HTTP/x.y]\nbody" -> raw request.
sub build_request {
    my ($block, $text) = @_;
    my ($first, $body) = split /\n/, $text, 2;
    $body //= '';
    $first =~ s/^\s+|\s+$//g;
    my ($method, $uri, $ver) = split /\s+/, $first;
    die "empty request line\n" unless defined $method;
    $uri //= '/';
    $ver //= 'HTTP/1.1';
    my $req = "$method $uri $ver\r\n";
    my $more = $block->more_headers // '';
    my $has_host = $more =~ /^\s*Host\s*:/mi;
    $req .= "Host: localhost\r\n" unless $has_host;
    $req .= "Connection: close\r\n" unless $more =~ /^\s*Connection\s*:/mi;
    for my $h (split /\n/, expand_env($more)) {
        next unless $h =~ /\S/;
        $h =~ s/^\s+|\s+$//g;
        $req .= "$h\r\n";
    }
    if (length $body || $method =~ /^(POST|PUT|PATCH)$/) {
        $req .= "Content-Length: " . length($body) . "\r\n"
            unless $more =~ /^\s*Content-Length\s*:/mi;
    }
    return "$req\r\n$body";
}

# Send one request on a fresh connection and read the response until the
# server closes it.  Returns ($response, undef) or (undef, $error).
sub send_request {
    my ($raw, $timeout) = @_;
    my $deadline = Time::HiRes::time() + $timeout;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $ServerPort, Proto => 'tcp',
                                     Timeout => $timeout)
        or return (undef, "cannot connect to 127.0.0.1:$ServerPort: $!");
    $sock->blocking(0);
    my $sel = IO::Select->new($sock);
    local $SIG{PIPE} = 'IGNORE';

    my $off = 0;
    while ($off < length $raw) {
        my $left = $deadline - Time::HiRes::time();
        return (undef, "timeout sending the request") if $left <= 0;
        # nginx may answer (and close) before reading the whole body.
        last if $sel->can_read(0);
        next unless $sel->can_write($left);
        my $n = syswrite($sock, $raw, 65536, $off);
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            last if $!{EPIPE} || $!{ECONNRESET};
            return (undef, "send: $!");
        }
        $off += $n;
    }

    my $buf = '';
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        if ($left <= 0) {
            return (undef, "timeout (${timeout}s) reading the response; got "
                    . length($buf) . " bytes: " . substr($buf, 0, 300));
        }
        next unless $sel->can_read($left);
        my $n = sysread($sock, $buf, 65536, length $buf);
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            last if $!{ECONNRESET} && length $buf;
            return (undef, "recv: $!");
        }
        last if $n == 0;
    }
    close $sock;
    return parse_response($buf);
}

sub parse_response {
    my ($buf) = @_;
    my $end = index($buf, "\r\n\r\n");
    return (undef, "incomplete response header: " . substr($buf, 0, 300))
        if $end < 0;
    my $head = substr($buf, 0, $end);
    my $body = substr($buf, $end + 4);
    my ($status_line, @lines) = split /\r\n/, $head;
    return (undef, "bad status line: $status_line")
        unless $status_line =~ m{^HTTP/\d\.\d\s+(\d{3})};
    my $res = { status => $1, headers => {}, raw_headers => "$head\r\n" };
    for my $l (@lines) {
        my ($k, $v) = $l =~ /^([^:]+?)\s*:\s*(.*)$/ or next;
        my $lk = lc $k;
        $res->{headers}{$lk} = exists $res->{headers}{$lk}
                               ? "$res->{headers}{$lk}, $v" : $v;
    }
    my $te = $res->{headers}{'transfer-encoding'} // '';
    if ($te =~ /chunked/i) {
        my $out = '';
        while (1) {
            $body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//
                or return (undef, "bad or truncated chunked body");
            my $len = hex $1;
            last if $len == 0;
            return (undef, "truncated chunked body")
                if length($body) < $len + 2;
            $out .= substr($body, 0, $len);
            $body = substr($body, $len + 2);
        }
        $body = $out;
    } elsif (defined(my $cl = $res->{headers}{'content-length'})) {
        return (undef, "truncated body: $cl bytes announced, "
                . length($body) . " received") if length($body) < $cl;
        $body = substr($body, 0, $cl);
    }
    $res->{body} = $body;
    return ($res, undef);
}

# ---------------------------------------------------------------------------
# Checks.

# The expectation for request $idx of $n: an array has one per request.
sub indexed {
    my ($name, $section, $value, $idx, $n) = @_;
    return undef unless defined $value;
    return $value->[$idx] if ref $value eq 'ARRAY';
    die "$section must be an array (one element per request) when "
        . "--- request is an array of $n requests\n" if $n > 1;
    return $value;
}

sub header_checks {
    my ($spec) = @_;
    return () unless defined $spec;
    if (ref $spec eq 'HASH') {
        return map { [ $_, $spec->{$_} ] } sort keys %$spec;
    }
    my @checks;
    for my $line (split /\n/, $spec) {
        $line =~ s/^\s+|\s+$//g;
        next unless length $line;
        if ($line =~ s/^!\s*//) {
            push @checks, [ $line, undef ];
        } else {
            my ($k, $v) = split /\s*:\s*/, $line, 2;
            push @checks, [ $k, $v // '' ];
        }
    }
    return @checks;
}

sub check_response {
    my ($block, $res, $idx, $n, $tag) = @_;
    my $name = $block->name;

    my $code = indexed($name, 'error_code', sec($block, "error_code"),
                       $idx, $n) // 200;
    $code =~ s/^\s+|\s+$//g;
    is($res->{status}, $code, "$name - status code ok$tag");

    my $hdrs = sec($block, "response_headers");
    for my $c (header_checks(indexed($name, 'response_headers', $hdrs,
                                     $idx, $n))) {
        my ($k, $v) = @$c;
        my $actual = $res->{headers}{lc $k};
        if (!defined $v) {
            ok(!defined $actual, "$name - header $k not present$tag")
                or diag("$k: $actual");
        } else {
            is($actual // '', expand_env($v), "$name - header $k ok$tag");
        }
    }
    for my $c (header_checks(indexed($name, 'response_headers_like',
                                     sec($block, "response_headers_like"),
                                     $idx, $n))) {
        my ($k, $v) = @$c;
        my $re = ref $v eq 'Regexp' ? $v : qr/^$v$/;
        like($res->{headers}{lc $k} // '', $re,
             "$name - header $k like ok$tag");
    }
    if (defined(my $body = sec($block, "response_body"))) {
        my $want = indexed($name, 'response_body', $body, $idx, $n);
        is($res->{body}, expand_env($want), "$name - response_body ok$tag")
            if defined $want;
    }
    for my $sec (qw(response_body_like response_body_unlike)) {
        my $pat = indexed($name, $sec, sec($block, $sec), $idx, $n);
        next unless defined $pat;
        my $re = ref $pat eq 'Regexp' ? $pat : qr/${\ expand_env($pat)}/s;
        my $body = $res->{body};
        my $show = length $body > 200 ? substr($body, 0, 200) . '...' : $body;
        $show =~ s/\s+$//;
        $show =~ s/\n/\\n/g;
        if ($sec eq 'response_body_like') {
            like($body, $re, "$name - response_body_like ($show)$tag");
        } else {
            unlike($body, $re, "$name - response_body_unlike ($show)$tag");
        }
    }
}

# error_log / no_error_log values: a string is one pattern per line, matched
# literally; a qr// or an array of strings and qr//.
sub log_patterns {
    my ($v) = @_;
    return () unless defined $v;
    return ($v) if ref $v eq 'Regexp';
    return grep { defined } @$v if ref $v eq 'ARRAY';
    chomp $v;
    return grep { length } split /\n+/, $v;
}

sub line_matches {
    my ($line, $pat) = @_;
    return ref $pat ? $line =~ $pat : index($line, $pat) >= 0;
}

sub check_error_log {
    my ($block, $lines, $tag) = @_;
    my $name = $block->name;

    for my $pat (log_patterns(sec($block, "error_log"))) {
        my ($hit) = grep { line_matches($_, $pat) } @$lines;
        ok($hit, "$name - pattern \"$pat\" matches a line in error.log$tag");
    }
    for my $pat (log_patterns(sec($block, "no_error_log"))) {
        my ($hit) = grep { line_matches($_, $pat) } @$lines;
        ok(!$hit, "$name - pattern \"$pat\" does not match a line in "
                  . "error.log$tag")
            or diag("matching line: $hit");
    }
    my $grep = sec($block, "grep_error_log");
    if (defined $grep) {
        my $want = sec($block, "grep_error_log_out");
        die "--- grep_error_log needs --- grep_error_log_out\n"
            unless defined $want;
        chomp $grep unless ref $grep;
        my $got = '';
        for my $line (@$lines) {
            if (ref $grep ? $line =~ $grep : $line =~ /\Q$grep\E/) {
                $got .= "$&\n" unless $& =~ /\n/;
            }
        }
        if (ref $want eq 'Regexp') {
            like($got, $want, "$name - grep_error_log_out$tag");
        } else {
            is($got, expand_env($want), "$name - grep_error_log_out$tag");
        }
    } elsif (defined sec($block, "grep_error_log_out")) {
        die "--- grep_error_log_out needs --- grep_error_log\n";
    }

    # Like Test::Nginx: serious messages nobody asked about are reported.
    my $asked = join "\n", map { "$_" }
        log_patterns(sec($block, "error_log")),
        log_patterns(sec($block, "no_error_log"));
    for my $level (qw(alert crit emerg)) {
        next if $asked =~ /\[$level/;
        for my $line (grep { /\[$level\]/ } @$lines) {
            chomp(my $l = $line);
            warn "WARNING: $name - $l\n";
        }
    }
}

sub check_valgrind {
    my ($block) = @_;
    return unless $UseValgrind;
    my $name = $block->name;
    my $report = '';
    opendir my $dh, "$ServRoot/logs" or return;
    for my $f (sort grep { /^valgrind\.\d+\.log$/ } readdir $dh) {
        $report .= slurp("$ServRoot/logs/$f") // '';
    }
    ok($report !~ /\S/, "$name - valgrind reports no errors")
        or diag($report);
}

# The lines an ASan or UBSan report is made of.
my $SanitizerLine = join '|', '==\d+==', '\s+#\d+ ', 'SUMMARY: ',
    '(?:READ|WRITE) of size ', '0x\w+ is ',
    '(?:freed|previously allocated) by ', '\S+:\d+:\d+: runtime error: ';
$SanitizerLine = qr/^(?:$SanitizerLine)/;

# An AddressSanitizer or UBSan report in the block's error.log or
# stderr.log fails the block, whether or not TEST_NGINX_ASAN is set (a
# runtime may have been preloaded by hand).
sub check_sanitizer {
    my ($block) = @_;
    my $name = $block->name;
    my $report = '';
    for my $file (error_log_file(), stderr_file()) {
        my $text = slurp($file) // next;
        next unless $text =~ /^(==\d+==ERROR:\ \w+Sanitizer\b
                                |\S+:\d+:\d+:\ runtime\ error:\ )/mx;
        my ($from, $ubsan) = ($-[0], $1 =~ /runtime error/);
        # The first report, without what other processes logged meanwhile
        # (debug messages span lines too): the lines a report is made of,
        # up to ASan's SUMMARY (or ABORTING) line, or for UBSan up to
        # nginx's next message.
        my @lines;
        for my $line (split /\n/, substr($text, $from)) {
            last if $ubsan && @lines
                    && $line =~ m{^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[};
            next unless $line =~ $SanitizerLine;
            push @lines, $line;
            last if $line =~ /^SUMMARY: |^==\d+==ABORTING/ || @lines == 100;
        }
        my $where = File::Basename::basename($file);
        $report .= "logs/$where:\n" . join("\n", @lines)
                   . "\n(the whole report is in logs/$where)\n";
    }
    return unless $UseAsan || length $report;
    ok(!length $report, "$name - no AddressSanitizer/UBSan report")
        or diag($report);
}

# ---------------------------------------------------------------------------
# Running blocks.

# --- init runs once nginx is up; --- setup (this subset's own) before it
# starts, for state the configuration depends on (e.g. a DNS zone).
sub run_init {
    my ($block, $section) = @_;
    $section //= "init";
    my $code = sec($block, $section);
    return undef unless defined $code;
    my $name = $block->name;
    # Unlike Test::Nginx (which evaluates it in Test::Nginx::Util), the code
    # runs in package main, so the test file's own subs can be called.
    my $ok = eval "package main; no strict 'vars';\n"
                  . "#line 1 \"$name --- $section\"\n$code\n;1";
    return $ok ? undef : ($@ || 'unknown error');
}

sub requests_of {
    my ($block) = @_;
    my $r = sec($block, "request");
    die "no --- request section\n" unless defined $r;
    my @reqs = ref $r eq 'ARRAY' ? @$r : ($r);
    die "--- request is an empty array\n" unless @reqs;
    return map { expand_env($_) } @reqs;
}

sub run_block {
    my ($block) = @_;
    my $name = $block->name;

    if (my $errs = $block->{_lite_errors}) {
        fail("$name - sections evaluate");
        diag($_) for @$errs;
        return;
    }

    setup_servroot();
    write_user_files($block);
    write_config($block);
    my $timeout = (parse_time(sec($block, "timeout")) // $Timeout)
                  * $TimeoutScale;

    if (defined(my $err = run_init($block, "setup"))) {
        fail("$name - setup");
        diag("setup failed: $err");
        return;
    }

    if (defined sec($block, "must_die")) {
        my ($st, $code) = start_nginx($block);
        my $want = sec($block, "must_die");
        $want =~ s/^\s+|\s+$//g;
        if ($st eq 'up') {
            fail("$name - nginx must die but it started");
            stop_nginx();
        } elsif ($st eq 'exit') {
            if ($want =~ /^\d+$/) {
                is($code, $want, "$name - nginx dies with exit code $want");
            } else {
                pass("$name - nginx dies as expected");
            }
        } else {
            fail("$name - nginx dies as expected");
            diag($code);
        }
        my $log = slurp(error_log_file()) // '';
        check_error_log($block, [ split /^/, $log ], '');
        check_valgrind($block);
        check_sanitizer($block);
        return;
    }

    my ($st, $code) = start_nginx($block);
    if ($st ne 'up') {
        fail("$name - nginx starts");
        diag($st eq 'exit' ? "nginx exited with status $code" : $code);
        diag("stderr:\n" . tail(slurp(stderr_file()), 20));
        diag("error.log (last lines):\n" . tail(slurp(error_log_file()), 20));
        check_sanitizer($block);
        return;
    }

    if (defined(my $err = run_init($block))) {
        fail("$name - init");
        diag("init failed: $err");
        diag("error.log (last lines):\n" . tail(slurp(error_log_file()), 20));
        stop_nginx();
        check_sanitizer($block);
        return;
    }

    my @reqs = requests_of($block);
    for my $rep (1 .. $RepeatEach) {
        for my $i (0 .. $#reqs) {
            my $tag = @reqs > 1 || $RepeatEach > 1
                    ? " (req $i" . ($RepeatEach > 1 ? ", repeat $rep" : '')
                      . ")"
                    : '';
            my ($res, $err) = send_request(build_request($block, $reqs[$i]),
                                           $timeout);
            if (!$res) {
                fail("$name - response received$tag");
                diag($err);
                next;
            }
            check_response($block, $res, $i, scalar @reqs, $tag);
        }
    }

    # Stop first: then every line of this block is in the log.
    if (defined(my $why = stop_nginx())) {
        fail("$name - nginx exits on QUIT");
        diag($why);
    }
    my $log = slurp(error_log_file()) // '';
    check_error_log($block, [ split /^/, $log ], '');
    check_valgrind($block);
    check_sanitizer($block);
}

sub run_tests {
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
    $ENV{TEST_NGINX_SERVROOT} //= $ServRoot;
    $ENV{TEST_NGINX_HTML_DIR} //= html_dir();

    my $version = `$NginxBinary -v 2>&1`;
    bail_out("cannot run $NginxBinary (set TEST_NGINX_BINARY)")
        unless defined $version && $version =~ /nginx version/;
    if ($UseAsan) {
        bail_out("TEST_NGINX_ASAN and TEST_NGINX_USE_VALGRIND do not go "
                 . "together") if $UseValgrind;
        eval { sanitizer_env(); 1 } or bail_out($@);
    }
    clear_stale_nginx();

    # The server root of a block that failed is kept here for a post-mortem
    # (t/servroot-failed/<file>/ for the default server roots).
    (my $file = File::Basename::basename($0)) =~ s/\.t$//;
    my $keep = File::Spec->catdir(File::Basename::dirname($ServRoot),
                                  'servroot-failed', $file);
    File::Path::remove_tree($keep) if -e $keep;

    my $tb = Test::More->builder;
    my @blocks = Test::Base::blocks();
    @blocks = List::Util::shuffle(@blocks) unless $NoShuffle;
    for my $block (@blocks) {
        verbose("running ", $block->name);
        my $failed_before = grep { !$_ } $tb->summary;
        my $ok = eval {
            $_->($block) for @BlockPreprocessors;
            run_block($block);
            1;
        };
        if (!$ok) {
            my $err = $@ || 'unknown error';
            fail($block->name . " - block runs");
            diag($err);
        }
        if (defined(my $why = stop_nginx())) {
            diag($block->name . ": $why");
        }
        if ($failed_before < grep { !$_ } $tb->summary) {
            keep_servroot($block, $keep);
        }
    }
}

sub keep_servroot {
    my ($block, $keep) = @_;
    (my $dir = $block->name) =~ s/[^\w.-]+/_/g;
    $dir = File::Spec->catdir($keep, substr($dir, 0, 60));
    File::Path::make_path($dir);
    system('cp', '-a', "$ServRoot/conf", "$ServRoot/logs", "$ServRoot/html",
           $dir) == 0
        and diag("server root of the failed block kept in $dir");
}

# ---------------------------------------------------------------------------
# --- foo eval sections are evaluated in package main (Test::Base evaluates
# them in Test::Base::Filter), and an error fails the block instead of
# becoming the section's value.

package Test::Nginx::Socket::Lite::Filter;

use strict;
use warnings;
our @ISA = ('Test::Base::Filter');

sub eval {
    my ($self, $code) = @_;
    my $block = $self->current_block;
    my $name = $block->name // 'block';
    my @value = CORE::eval("package main; no strict 'vars';\n"
                           . "#line 1 \"$name --- eval section\"\n$code");
    if ($@) {
        push @{ $block->{_lite_errors} }, "eval section failed: $@";
        return undef;
    }
    return @value;
}

1;
