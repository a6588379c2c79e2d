package Llmd::Proc;

# Helper processes (vllm-sim, llmd-loadgen, a second nginx, stub servers)
# that die with the test that started them, however it ends: the child asks
# the kernel for SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG)
# before it execs, so a test killed by SIGKILL, SIGTERM or SIGINT, or dying
# on a failed check, leaves nothing running; END stops the rest.
#
#   my $pid = Llmd::Proc::spawn([ $bin, @args ], stdout => '/dev/null');
#   Llmd::Proc::stop($pid);              # TERM, then KILL after 5 s
#   my $sim = Llmd::Proc::sim(ports => [...], health => [...], args => [...]);

use strict;
use warnings;
use POSIX ();
use Time::HiRes ();
use Llmd::Ports ();
use Llmd::Util ();

my $PR_SET_PDEATHSIG = 1;
my %Live;               # pid => the pid of the process that started it

# The prctl syscall number (x86_64: 157), from syscall.ph when there is one.
my $SysPrctl = eval { require 'syscall.ph'; &SYS_prctl() } // 157;

# Makes the calling process receive $sig when its parent exits. Returns
# false if the parent is already gone (then the caller should exit).
sub die_with_parent {
    my ($parent, $sig) = @_;
    syscall($SysPrctl, $PR_SET_PDEATHSIG, $sig // 9, 0, 0, 0);
    return getppid() == $parent;
}

# spawn([cmd...], stdin => FILE, stdout => FILE, stderr => FILE,
#       env => { K => V }, code => sub { ... } (run instead of exec))
sub spawn {
    my ($cmd, %o) = @_;
    my $parent = $$;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        die_with_parent($parent) or POSIX::_exit(1);
        open(STDIN, '<', $o{stdin} // '/dev/null');
        open(STDOUT, '>', $o{stdout}) if defined $o{stdout};
        open(STDERR, '>', $o{stderr}) if defined $o{stderr};
        @ENV{ keys %{ $o{env} } } = values %{ $o{env} } if $o{env};
        if ($o{code}) {
            %Live = ();
            $o{code}->();
            POSIX::_exit(0);
        }
        { no warnings 'exec'; exec { $cmd->[0] } @$cmd; }
        print STDERR "cannot run $cmd->[0]: $!\n";
        POSIX::_exit(127);
    }
    $Live{$pid} = $$;
    return $pid;
}

# True while $pid (our child) runs; reaps it once it has exited.
sub alive {
    my ($pid) = @_;
    return 0 unless $pid;
    my $r = waitpid($pid, POSIX::WNOHANG());
    return 0 if $r == $pid || ($r < 0 && !kill(0, $pid));
    return 1;
}

# Waits for $pid to exit; returns its wait status ($?), or undef if it is
# still running after $secs (then it is left alone).
sub wait_exit {
    my ($pid, $secs) = @_;
    my $deadline = Time::HiRes::time() + ($secs // 0);
    while (1) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        if ($r == $pid) {
            delete $Live{$pid};
            return $?;
        }
        if ($r < 0) {
            delete $Live{$pid};
            return -1;
        }
        return undef if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.02);
    }
}

# Runs a command to its end, as system() does, but dying with the test.
sub run {
    my ($cmd, %o) = @_;
    my $pid = spawn($cmd, %o);
    waitpid($pid, 0);
    delete $Live{$pid};
    return $?;
}

# TERM, then KILL after $secs; returns the wait status.
sub stop {
    my ($pid, $secs) = @_;
    return undef unless $pid && delete $Live{$pid};
    kill 'TERM', $pid;
    my $st = wait_exit($pid, $secs // 5);
    return $st if defined $st;
    kill 'KILL', $pid;
    waitpid($pid, 0);
    return $?;
}

# Starts vllm-sim after checking its ports are free, and waits until each
# "addr:port" in health answers /health while the process started here is
# still running (never a leftover of another run). Dies with the reason.
#   sim(args => [...], ports => [ports or addr:port it binds],
#       health => [ "127.0.0.1:PORT", ... ], bin => path, timeout => 10)
sub sim {
    my (%o) = @_;
    my $bin = $o{bin} // Llmd::Util::repo_root() . "/build/bin/vllm-sim";
    die "$bin is not built (make build/bin/vllm-sim)\n" unless -x $bin;
    Llmd::Ports::assert_free(@{ $o{ports} // [] });
    my $pid = spawn([ $bin, @{ $o{args} } ], %{ $o{spawn} // {} });
    for my $h (@{ $o{health} // [] }) {
        my ($addr, $port) = split /:/, $h;
        my $up = Llmd::Util::wait_until($o{timeout} // 10, sub {
            return 0 unless alive($pid);
            my $r = Llmd::Util::http_request(method => "GET", addr => $addr,
                                             port => $port, path => "/health",
                                             timeout => 1);
            return $r->{status} == 200;
        });
        if (!$up || !alive($pid)) {
            my $st = alive($pid) ? 'running' : 'exited';
            stop($pid);
            die "vllm-sim (@{ $o{args} }) does not answer /health on $h "
                . "($st)\n";
        }
    }
    return $pid;
}

# Children a process started that are still running are stopped when it
# ends (a child made by spawn(code => ...) does not stop its siblings).
END {
    my $status = $?;
    for my $pid (keys %Live) {
        next unless $Live{$pid} == $$;
        kill 'TERM', $pid;
    }
    for my $pid (keys %Live) {
        next unless $Live{$pid} == $$;
        next if defined wait_exit($pid, 3);
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    $? = $status;
}

1;
