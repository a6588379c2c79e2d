# The site file shipped as an example loads (nginx -t with the built module),
# and keeps the status and metrics locations restricted.
use strict;
use warnings;
use File::Temp ();
use Test::More;
use lib 't/lib';
use Llmd::Ports qw(port);
use Llmd::Util;

my $root = Llmd::Util::repo_root();
my $so = $ENV{TEST_NGINX_LLMD_SO} // "$root/build/ngx_http_llmd_module.so";
my $dir = File::Temp::tempdir(CLEANUP => 1);
mkdir "$dir/$_" for qw(logs llmd);

open my $in, '<', "$root/conf-examples/nginx.conf" or die "$!";
my $conf = do { local $/; <$in> };
close $in;

like($conf, qr{location = /llmd/status [{][^}]*deny all;}s,
     'llmd_status is restricted');
like($conf, qr{location = /llmd/metrics [{][^}]*deny all;}s,
     'the Prometheus metrics are restricted');
like($conf, qr{llmd_json_errors on;}, 'the API location answers JSON errors');

$conf =~ s{load_module \S+;}{load_module $so;} or die "no load_module";
$conf =~ s{/etc/nginx/llmd/epp\.yaml}{$root/conf-examples/epp-default.yaml}g;
$conf =~ s{/var/log/nginx/}{$dir/logs/}g;
my $port = port(30);
$conf =~ s{listen 80;}{listen 127.0.0.1:$port;};
$conf = "pid $dir/nginx.pid;\nerror_log $dir/logs/error.log;\n$conf";
open my $out, '>', "$dir/nginx.conf" or die "$!";
print $out $conf;
close $out;

my $log = `/usr/sbin/nginx -t -p $dir/ -c $dir/nginx.conf 2>&1`;
is($? >> 8, 0, 'conf-examples/nginx.conf passes nginx -t') or diag($log);

done_testing();
