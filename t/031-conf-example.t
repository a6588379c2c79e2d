# The site files shipped as examples (conf-examples/nginx.conf, and
# nginx-pd.conf for P/D) load (nginx -t with the built module), and keep
# the status and metrics locations restricted.
use strict;
use warnings;
use File::Temp ();
use Test::More;
use lib 't/lib';
use Llmd::Ports qw(port);
use Llmd::Util;

my $root = Llmd::Util::repo_root();
my $so = $ENV{TEST_NGINX_LLMD_SO} // "$root/build/ngx_http_llmd_module.so";

# Each example with the module built here, its paths moved to a temporary
# directory, passes nginx -t.
sub check_example {
    my ($file, $epp_name, $epp, $port) = @_;
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    mkdir "$dir/$_" for qw(logs llmd);

    open my $in, '<', "$root/conf-examples/$file" or die "$!";
    my $conf = do { local $/; <$in> };
    close $in;

    like($conf, qr{location = /llmd/status [{][^}]*deny all;}s,
         "$file: llmd_status is restricted");
    like($conf, qr{location = /llmd/metrics [{][^}]*deny all;}s,
         "$file: the Prometheus metrics are restricted");
    like($conf, qr{llmd_json_errors on;},
         "$file: the API location answers JSON errors");

    $conf =~ s{load_module \S+;}{load_module $so;} or die "no load_module";
    $conf =~ s{/etc/nginx/llmd/\Q$epp_name\E}{$root/conf-examples/$epp}g
        or die "$file names no /etc/nginx/llmd/$epp_name";
    $conf =~ s{/var/log/nginx/}{$dir/logs/}g;
    $conf =~ s{listen 80;}{listen 127.0.0.1:$port;};
    $conf = "pid $dir/nginx.pid;\nerror_log $dir/logs/error.log;\n$conf";
    open my $out, '>', "$dir/nginx.conf" or die "$!";
    print $out $conf;
    close $out;

    my $log = `/usr/sbin/nginx -t -p $dir/ -c $dir/nginx.conf 2>&1`;
    is($? >> 8, 0, "conf-examples/$file passes nginx -t") or diag($log);
    return $log;
}

check_example('nginx.conf', 'epp.yaml', 'epp-default.yaml', port(30));

# the P/D example: its servers carry roles, its config runs P/D
my $log = check_example('nginx-pd.conf', 'epp-pd.yaml', 'epp-pd.yaml',
                        port(31));
unlike($log, qr/\[(warn|emerg)\]/, 'nginx-pd.conf: no warning');

done_testing();
