# The layer rules of docs/architecture.md hold (scripts/check-layers.py):
# includes only point down (nginx -> kv -> core, nginx -> tokenizer), only
# src/nginx/ includes nginx's headers, and no files form an include or call
# loop. The checker is first shown a small tree that breaks every rule, so
# a checker that finds nothing cannot pass.
use strict;
use warnings;
use Cwd ();
use File::Basename ();
use File::Path ();
use File::Temp ();
use Test::More;

my $root = Cwd::abs_path(File::Basename::dirname(__FILE__) . '/..');
my $check = "$root/scripts/check-layers.py";

sub run_check {
    my (@args) = @_;
    my $out = `python3 $check @args 2>&1`;
    return ($? >> 8, $out);
}

sub spew {
    my ($path, $text) = @_;
    File::Path::make_path(File::Basename::dirname($path));
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
}

# --- a tree with one of each violation ---------------------------------
my $bad = File::Temp::tempdir(CLEANUP => 1);
spew("$bad/ngx_http_llmd_module.c", "int m;\n");
spew("$bad/src/kv/llmd_k.h", "int k(void);\n");
spew("$bad/src/core/llmd_a.c",
     "#include \"kv/llmd_k.h\"\n"
     . "int b(void);\nint a(void) { return b() + k(); }\n");
spew("$bad/src/core/llmd_b.c", "int a(void);\nint b(void) { return a(); }\n");
spew("$bad/src/kv/llmd_k.c", "int k(void) { return 1; }\n");
spew("$bad/src/core/llmd_h1.h",
     "#include <ngx_core.h>\n#include \"core/llmd_h2.h\"\n");
spew("$bad/src/core/llmd_h2.h", "#include \"core/llmd_h1.h\"\n");
spew("$bad/sim/x.c", "#include \"nginx/ngx_llmd.h\"\n");
for my $f (qw(core/llmd_a core/llmd_b kv/llmd_k)) {
    File::Path::make_path("$bad/build/obj/" . File::Basename::dirname($f));
    system("cc", "-I$bad/src", "-c", "$bad/src/$f.c",
           "-o", "$bad/build/obj/$f.o") == 0
        or BAIL_OUT("cannot compile the checker's fixture");
}

my ($rc, $out) = run_check("--root", $bad);
is($rc, 1, 'the checker fails on a tree that breaks the rules');
like($out, qr{src/core/llmd_a\.c \(core\) includes src/kv/llmd_k\.h},
     'it names an include that points up');
like($out, qr{includes <ngx_core\.h>: only src/nginx/},
     "it names nginx's headers outside src/nginx/");
like($out, qr{include loop: src/core/llmd_h1\.h -> src/core/llmd_h2\.h},
     'it names an include loop');
like($out, qr{call loop in plain-C layers: obj/core/llmd_a\.o, obj/core/llmd_b\.o},
     'it names a call loop between two objects');
like($out, qr{obj/core/llmd_a\.o \(core\) calls k in obj/kv/llmd_k\.o \(kv\)},
     'it names a call up the layers');
like($out, qr{sim/x\.c \(tool\) includes nginx/ngx_llmd\.h .*does not exist|sim/x\.c includes "nginx/ngx_llmd\.h", which does not exist},
     'it names an include that does not resolve');

# --- this tree -------------------------------------------------------------
($rc, $out) = run_check();
is($rc, 0, 'this tree keeps the layer rules') or diag($out);
like($out, qr/\b(\d+) objects checked/, 'objects were read')
    and cmp_ok(($out =~ /(\d+) objects checked/)[0], '>', 40,
               'every layer\'s objects were read');

done_testing();
