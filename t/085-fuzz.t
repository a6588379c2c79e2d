# The libFuzzer targets of fuzz/ (fuzz/README.md): each built target
# passes every input of its seed corpus (fuzz/corpus/<name>/), then fuzzes
# for a few seconds with a fixed seed without a finding.  Builds nothing:
# `make fuzz` (a prerequisite of `make test`) builds build/fuzz/fuzz_<name>.
# New inputs and crash artifacts go to a temporary directory, never into
# the tree.
use strict;
use warnings;
use Cwd ();
use File::Basename ();
use File::Temp ();
use POSIX ();
use Test::More;

my $root = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/..');
my @targets = qw(request config prom kv tokenizer chat endpoints loadgen
                 body_scan);

# seconds of fuzzing per target: 9 targets, two at a time, take about 20 s
my $seconds = 3;

# Runs cmd with its output in log; returns its wait status.
sub run_log {
    my ($log, @cmd) = @_;
    system(join(' ', map { quotemeta } @cmd) . ' >' . quotemeta($log)
           . ' 2>&1');
    return $?;
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text;
}

sub artifacts {
    my ($dir) = @_;
    opendir my $dh, $dir or die "$dir: $!";
    my @found = grep { /^(crash|leak|timeout|oom|slow-unit)-/ } readdir $dh;
    closedir $dh;
    return @found;
}

sub tail_of {
    my ($out) = @_;
    my @lines = split /\n/, $out;
    return join("\n", @lines > 30 ? @lines[-30 .. -1] : @lines);
}

# Both runs of target t in its directory tmp: the seeds once, then a few
# seconds of fuzzing (new inputs go to the first, temporary, directory).
# Their wait statuses go to tmp/rc.
sub fuzz_target {
    my ($t, $tmp) = @_;
    my $bin = "$root/build/fuzz/fuzz_$t";
    my $seeds = "$root/fuzz/corpus/$t";
    my $dict = "$root/fuzz/dict/$t.dict";
    my @common = ("-artifact_prefix=$tmp/", '-timeout=20',
                  (-f $dict ? ("-dict=$dict") : ()));

    my $rc_seeds = run_log("$tmp/seeds.log", $bin, @common, '-runs=0',
                           $seeds);
    mkdir "$tmp/corpus" or die "$tmp/corpus: $!";
    my $rc_fuzz = run_log("$tmp/fuzz.log", $bin, @common, '-seed=1',
                          "-max_total_time=$seconds", "$tmp/corpus", $seeds);

    open my $fh, '>', "$tmp/rc" or die "$tmp/rc: $!";
    print $fh "$rc_seeds $rc_fuzz\n";
    close $fh;
}

# Two targets at a time (two cores), each in a child process.
my (%tmp, %running);
for my $t (grep { -x "$root/build/fuzz/fuzz_$_" } @targets) {
    if (keys %running >= 2) {
        delete $running{waitpid(-1, 0)};
    }
    $tmp{$t} = File::Temp::tempdir("llmd-fuzz-$t-XXXXXX", TMPDIR => 1,
                                   CLEANUP => 1);
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        fuzz_target($t, $tmp{$t});
        POSIX::_exit(0);
    }
    $running{$pid} = $t;
}
while (keys %running) {
    delete $running{waitpid(-1, 0)};
}

for my $t (@targets) {
    my $bin = "$root/build/fuzz/fuzz_$t";
    my $seeds = "$root/fuzz/corpus/$t";

    if (!ok(-x $bin, "fuzz_$t is built")) {
        diag("$bin is missing: run `make fuzz` first");
        next;
    }

    opendir my $dh, $seeds or die "$seeds: $!";
    my $nseeds = grep { -f "$seeds/$_" } readdir $dh;
    closedir $dh;
    cmp_ok($nseeds, '>=', 10, "fuzz_$t has a seed corpus");

    my $tmp = $tmp{$t};
    my ($rc_seeds, $rc_fuzz) = split ' ', slurp("$tmp/rc") || '-1 -1';

    my $out = slurp("$tmp/seeds.log");
    ok($rc_seeds == 0 && $out =~ /^INFO:\s+$nseeds files found/m
       && $out =~ /^#\d+\s+INITED/m, "fuzz_$t passes its $nseeds seeds")
        or diag(tail_of($out));

    $out = slurp("$tmp/fuzz.log");
    ok($rc_fuzz == 0 && $out =~ /^Done \d+ runs/m,
       "fuzz_$t fuzzes for ${seconds} s without a finding")
        or diag(tail_of($out));

    my @found = artifacts($tmp);
    is(scalar @found, 0, "fuzz_$t left no crash artifact")
        or diag("artifacts: @found");
}

done_testing();
