package Test::Nginx::Socket;

# Shim: the tests say `use Test::Nginx::Socket 'no_plan';`.  When a real
# Test::Nginx::Socket is installed elsewhere in @INC it is loaded under its
# own name; otherwise (Debian does not package it) this project's
# Test::Nginx::Socket::Lite is, with Test::Nginx::Socket a subclass of it so
# that `use` exports the same functions.  TEST_NGINX_LITE=1 forces Lite.
#
# Either way, --- foo eval sections and --- init are evaluated in package
# main, so the test files' own subs and those of Llmd::Fixtures can be
# called without a main:: prefix (real Test::Nginx evaluates them in
# Test::Base::Filter and Test::Nginx::Util).
#
# The port and the server root default to the test file's own
# (Llmd::Ports), so that `prove -j` can run files side by side.

use strict;
use warnings;
use Cwd ();
use Llmd::Ports ();

our $Implementation;

BEGIN {
    # This file's own port block and server root (t/README.md), before
    # either implementation reads TEST_NGINX_SERVER_PORT and
    # TEST_NGINX_SERVROOT.
    Llmd::Ports::set_defaults();

    my $self = Cwd::abs_path(__FILE__);
    my $real;
    if (!$ENV{TEST_NGINX_LITE}) {
        for my $dir (@INC) {
            next if ref $dir;
            my $file = "$dir/Test/Nginx/Socket.pm";
            next unless -f $file;
            my $abs = Cwd::abs_path($file);
            next if !defined $abs || $abs eq $self;
            $real = $abs;
            last;
        }
    }

    if ($real) {
        $Implementation = $real;
        # The real module declares this same package; load it in place.
        my $ok = do $real;
        die "cannot load $real: $@" if $@;
        die "cannot load $real: $!" unless defined $ok;
    } else {
        require Test::Nginx::Socket::Lite;
        $Implementation = 'Test::Nginx::Socket::Lite';
        our @ISA = ('Test::Nginx::Socket::Lite');
    }
}

if ($Implementation ne 'Test::Nginx::Socket::Lite') {
    # Test::Base finds the filter class as "<class of the default object>::
    # Filter", i.e. this one for the real module.
    package Test::Nginx::Socket::Filter;
    our @ISA = ('Test::Base::Filter');

    sub eval {
        my ($self, $code) = @_;
        my $block = $self->current_block;
        my $name = $block->name // 'block';
        my @value = CORE::eval("package main; no strict 'vars';\n"
                               . "#line 1 \"$name --- eval section\"\n$code");
        die "$name: eval section failed: $@" if $@;
        return @value;
    }

    package Test::Nginx::Socket;

    # Registered first, so it runs after the test file's own preprocessors.
    add_block_preprocessor(sub {
        my $block = shift;
        my $init = $block->init;
        $block->set_value(init => "package main; no strict 'vars';\n$init")
            if defined $init && $init !~ /^package main;/;
    });
}

1;
