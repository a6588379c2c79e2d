# The container image (docker/) cannot fall behind the module: without
# building it, checks that docker/Dockerfile's runtime stage installs the
# Debian package of every library the built module needs (or Debian's nginx
# pulls it in), that its build stage installs the -dev package of every
# library `config` links, and the image's runtime contract: build/ kept out
# of the context, logs to stdout/stderr, a non-root USER, SIGQUIT to stop,
# the KV-event port exposed, the entrypoint's resolver.conf.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use Cwd qw(abs_path);
use File::Basename qw(dirname);

my $top = abs_path(dirname(__FILE__) . '/..');
chdir $top or die "chdir $top: $!";
my $so = "$top/build/ngx_http_llmd_module.so";

plan skip_all => 'dpkg and apt-cache (Debian) are needed'
    unless have('dpkg') && have('apt-cache');

my @stages = dockerfile_stages('docker/Dockerfile');
my $runtime = $stages[-1];
my ($build) = map { stage_named($_) }
              grep { defined } map { /^--from=(\S+)/ ? $1 : undef }
              map { $_->[1] } grep { $_->[0] eq 'COPY' } @{ $runtime->{ins} };
ok($build, 'the runtime stage copies the module from a build stage')
    or BAIL_OUT('no build stage');

# Runtime: every NEEDED library of the module comes from a package the
# runtime stage installs or one Debian's nginx depends on.
ok(-f $so, "$so is built (make module)") or BAIL_OUT('module not built');
my @needed = `objdump -p $so` =~ /^\s*NEEDED\s+(\S+)/mg;
cmp_ok(scalar @needed, '>=', 5, 'objdump -p lists the NEEDED libraries');
my %ldcache = ldconfig_paths();
my %nginx_deps = map { $_ => 1 } apt_closure('nginx');
ok($nginx_deps{libc6}, "apt-cache depends --recurse nginx reaches libc6");
my %runtime_pkgs = map { $_ => 1 } stage_packages($runtime);
for my $lib (@needed) {
    my $pkg = owner_package($ldcache{$lib});
    ok($pkg, "$lib belongs to a Debian package ("
       . ($ldcache{$lib} // 'not in ldconfig -p') . ")") or next;
    ok($runtime_pkgs{$pkg} || $nginx_deps{$pkg},
       "$lib: $pkg is installed by the runtime stage or a dependency of "
       . "nginx");
}

# Build: the -dev package of every -lfoo in `config`, the nginx sources
# `make module` configures against, and a compiler.
my %build_pkgs = map { $_ => 1 } stage_packages($build);
my $config = slurp('config');
my ($feature_libs) = $config =~ /^ngx_feature_libs="([^"]*)"/m;
my ($module_libs) = $config =~ /^ngx_module_libs="([^"]*)"/m;
my @libs = map { /-l(\S+)/g } grep { defined } $feature_libs, $module_libs;
cmp_ok(scalar @libs, '>=', 7, "config links libraries (@libs)");
for my $l (@libs) {
    my $path = dev_library("lib$l.so");
    my $pkg = owner_package($path);
    ok($pkg, "-l$l: lib$l.so belongs to a Debian package ("
       . ($path // 'not found') . ")") or next;
    ok($build_pkgs{$pkg}, "-l$l: the build stage installs $pkg");
}
my ($ngx_src) = slurp('mk/module.mk') =~ /^NGX_SRC\s*:=\s*(\S+)/m;
my $ngx_dev = owner_package("$ngx_src/conf_flags");
ok($ngx_dev && $build_pkgs{$ngx_dev},
   "the build stage installs " . ($ngx_dev // '?') . " ($ngx_src)");
ok($build_pkgs{make} && $build_pkgs{gcc}, 'the build stage installs make '
   . 'and gcc');

# The build context keeps host output out.
my %ignored = map { s{^\./|^/}{}r =~ s{/+$}{}r => 1 }
              grep { /\S/ && !/^\s*#/ } split /\n/, slurp('.dockerignore');
for my $p ('build', '.cache', 'node_modules', 't/servroot*',
           'bench/results', '.git') {
    ok($ignored{$p}, ".dockerignore excludes $p");
}
ok(!grep({ /^!/ } keys %ignored), '.dockerignore re-includes nothing');

# The runtime contract.
my %copied = map { my @w = split ' ', $_->[1]; ($w[-1] => $w[0]) }
             grep { $_->[0] eq 'COPY' && $_->[1] !~ /^--/ }
             @{ $runtime->{ins} };
my $conf_file = $copied{'/etc/nginx/nginx.conf'};
ok($conf_file, "the runtime stage copies an nginx.conf ("
   . ($conf_file // 'none') . ")") or BAIL_OUT('no nginx.conf');
my @directives = nginx_directives(slurp($conf_file));
my @access = map { $_->[1] } grep { $_->[0] eq 'access_log' } @directives;
my @error = map { $_->[1] } grep { $_->[0] eq 'error_log' } @directives;
ok(@access && !grep({ !m{^(/dev/stdout|off)\b} } @access),
   "$conf_file: every access_log is /dev/stdout (@access)");
ok(@error && !grep({ !m{^(stderr|/dev/stderr)\b} } @error),
   "$conf_file: every error_log is stderr (@error)");
ok(!grep({ $_->[0] eq 'user' } @directives),
   "$conf_file: no user directive (nginx runs as the image's USER)");

my ($user) = reverse map { $_->[1] } grep { $_->[0] eq 'USER' }
             @{ $runtime->{ins} };
my ($uname) = split /:/, $user // '';
ok(defined $user && $uname ne '' && $uname ne 'root' && $uname ne '0',
   'USER is not root (' . ($user // 'none') . ')');
my ($stop) = map { $_->[1] } grep { $_->[0] eq 'STOPSIGNAL' }
             @{ $runtime->{ins} };
is($stop, 'SIGQUIT', 'STOPSIGNAL SIGQUIT (nginx\'s graceful shutdown)');
my %exposed = map { s{/tcp$}{}r => 1 } map { split ' ', $_->[1] }
              grep { $_->[0] eq 'EXPOSE' } @{ $runtime->{ins} };
ok($exposed{5557}, 'EXPOSE has 5557 (KV events, bind mode)');
for my $listen (map { $_->[1] } grep { $_->[0] eq 'listen' } @directives) {
    my ($port) = $listen =~ /(\d+)(?:\s|$)/;
    ok($port && $exposed{$port}, "listen $listen is EXPOSEd");
}

# The entrypoint writes resolver.conf, which nginx.conf includes.
my ($entry) = map { $_->[1] =~ /"([^"]+)"/ } grep { $_->[0] eq 'ENTRYPOINT' }
              @{ $runtime->{ins} };
my $entry_src = $copied{$entry // ''};
ok($entry_src && -x $entry_src, 'the ENTRYPOINT ' . ($entry // 'none')
   . ' is copied from an executable ' . ($entry_src // '?'));
my ($resolver_conf) = slurp($entry_src // '/dev/null')
                      =~ /LLMD_RESOLVER_CONF:-([^}]+)\}/;
ok($resolver_conf && grep({ $_->[0] eq 'include'
                            && $_->[1] eq $resolver_conf } @directives),
   "$conf_file includes the entrypoint's " . ($resolver_conf // '?'));
my $dir = tempdir(CLEANUP => 1);
for my $case (["search ns.svc.cluster.local\nnameserver 10.96.0.10\n"
               . "nameserver 8.8.8.8\n", "resolver 10.96.0.10 valid=5s;\n"],
              ["nameserver fd00::a\n", "resolver [fd00::a] valid=5s;\n"],
              ["nameserver fe80::1%eth0\n", "resolver [fe80::1] valid=5s;\n"],
              ["# none\n", "# no nameserver in $dir/resolv.conf\n"]) {
    my ($resolv, $want) = @$case;
    spew("$dir/resolv.conf", $resolv);
    unlink "$dir/resolver.conf";
    my $out = entrypoint($entry_src, $dir, 'echo', 'ran', 'the command');
    is($out, "ran the command\n", 'the entrypoint runs its arguments');
    is(slurp("$dir/resolver.conf"), $want,
       "resolver.conf from " . ($resolv =~ s/\n/\\n/gr));
}
spew("$dir/resolver.conf", "resolver 192.0.2.1;\n");
entrypoint($entry_src, $dir, 'true');
is(slurp("$dir/resolver.conf"), "resolver 192.0.2.1;\n",
   'an existing resolver.conf (mounted) is kept');

done_testing();


sub have { return system("command -v $_[0] >/dev/null 2>&1") == 0; }

sub slurp {
    my ($f) = @_;
    open(my $fh, '<', $f) or die "$f: $!";
    local $/;
    return scalar <$fh>;
}

sub spew {
    my ($f, $text) = @_;
    open(my $fh, '>', $f) or die "$f: $!";
    print $fh $text;
    close $fh;
}

sub entrypoint {
    my ($script, $dir, @cmd) = @_;
    local $ENV{LLMD_RESOLVER_CONF} = "$dir/resolver.conf";
    local $ENV{LLMD_RESOLV_CONF} = "$dir/resolv.conf";
    my $args = join ' ', map { "'$_'" } @cmd;
    return scalar `$script $args 2>/dev/null`;
}

# Dockerfile -> stages: { name, from, ins => [[INSTRUCTION, arguments]] },
# continuation lines joined, comments dropped.
sub dockerfile_stages {
    my ($file) = @_;
    my $text = join "\n", grep { !/^\s*#/ } split /\n/, slurp($file);
    $text =~ s/\\\n/ /g;
    my @stages;
    for my $line (split /\n/, $text) {
        my ($ins, $args) = $line =~ /^\s*([A-Za-z]+)\s+(.*?)\s*$/ or next;
        $ins = uc $ins;
        if ($ins eq 'FROM') {
            my ($from, $name) = $args =~ /^(\S+)(?:\s+AS\s+(\S+))?/i;
            push @stages, { from => $from, name => $name, ins => [] };
        } elsif (@stages) {
            push @{ $stages[-1]{ins} }, [$ins, $args];
        }
    }
    return @stages;
}

sub stage_named {
    my ($name) = @_;
    my ($s) = grep { ($_->{name} // '') eq $name } @stages;
    return $s;
}

# Packages a stage installs with apt-get install, its parent stages' too.
sub stage_packages {
    my ($stage) = @_;
    my @pkgs;
    for my $run (map { $_->[1] } grep { $_->[0] eq 'RUN' } @{ $stage->{ins} }) {
        for my $cmd (split /&&|\|\||;|\|/, $run) {
            my ($words) = $cmd =~ /\bapt-get\s+(?:-\S+\s+)*install\s+(.*)/
                or next;
            push @pkgs, grep { !/^-/ } split ' ', $words;
        }
    }
    my $parent = stage_named($stage->{from});
    push @pkgs, stage_packages($parent) if $parent && $parent != $stage;
    return @pkgs;
}

# ldconfig -p: soname or file name -> path (this machine's architecture).
sub ldconfig_paths {
    my %path;
    for (`ldconfig -p`) {
        $path{$1} //= $2 if /^\s*(\S+)\s+\([^)]*\)\s+=>\s+(\S+)/;
    }
    return %path;
}

# A link-time library (libfoo.so, possibly a linker script ldconfig skips).
sub dev_library {
    my ($name) = @_;
    return $ldcache{$name} if $ldcache{$name};
    chomp(my $multiarch = `gcc -print-multiarch 2>/dev/null` // '');
    for my $d ("/usr/lib/$multiarch", '/usr/lib', "/lib/$multiarch") {
        return "$d/$name" if $multiarch ne '' && -e "$d/$name";
    }
    return undef;
}

# dpkg -S, trying the other side of the merged /usr (bookworm registers
# libraries under /lib, ldconfig may name /usr/lib, or the reverse).
sub owner_package {
    my ($path) = @_;
    return undef unless defined $path;
    my $other = $path =~ m{^/usr/} ? $path =~ s{^/usr}{}r : "/usr$path";
    for my $p ($path, $other) {
        for (`dpkg -S '$p' 2>/dev/null`) {
            return $1 if /^([^\s:,]+)(?::[^\s:]+)?: \Q$p\E$/;
        }
    }
    return undef;
}

# Every package apt-cache depends --recurse reaches through Depends and
# PreDepends (alternatives included), the package itself too.
sub apt_closure {
    my ($pkg) = @_;
    my @out = `apt-cache depends --recurse --no-recommends --no-suggests \\
               --no-conflicts --no-breaks --no-replaces --no-enhances $pkg \\
               2>/dev/null`;
    return grep { !/^</ } map { /^(\S+)$/ ? $1 : () } @out;
}

# nginx.conf -> [directive, arguments] in order (comments dropped, no
# nesting kept: enough for the log, user, listen and include checks).
sub nginx_directives {
    my ($text) = @_;
    $text =~ s/#[^\n]*//g;
    my @d;
    while ($text =~ /([a-z_0-9]+)\s+([^;{}]*?)\s*;/g) {
        my ($name, $args) = ($1, $2);
        push @d, [$name, $args =~ s/\s+/ /gr];
    }
    return @d;
}
