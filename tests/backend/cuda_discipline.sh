#!/bin/sh
# CUDA discipline of src/backend/cuda, checked on the sources (CI has no GPU):
#  - every cudaSetDevice, memset, kernel attribute and cuBLASLt attribute set is the argument of
#    VNP_CUDA_CHECK (its result checked, naming the call and file:line);
#  - no legacy-stream copies or memsets (cudaMemcpy / cudaMemset without Async) and no
#    device-wide waits (cudaDeviceSynchronize): everything on the backend's stream;
#  - the ops table is static const.
# Usage: cuda_discipline.sh SRC_DIR (the repository root). Prints each offence.
set -eu
dir=${1:?usage: cuda_discipline.sh SRC_DIR}/src/backend/cuda
perl -0777 -ne '
    my $f = $ARGV;
    (my $code = $_) =~ s{/\*.*?\*/}{(my $c = $&) =~ s/[^\n]/ /g; $c}gse; # comments out, lines kept
    while ($code =~ /\b(cudaSetDevice|cudaMemset\w*|cuda\w*SetAttribute|cublasLt\w*SetAttribute)\s*\(/g) {
        my ($call, $at) = ($1, $-[0]);
        my $before = substr($code, 0, $at);
        next if $before =~ /VNP_CUDA_CHECK\(\s*$/;
        my $line = 1 + (substr($code, 0, $at) =~ tr/\n//);
        print "$f:$line: $call not checked through VNP_CUDA_CHECK\n";
        $bad = 1;
    }
    while ($code =~ /\b(cudaMemcpy|cudaMemset|cudaDeviceSynchronize|cudaMemcpy2D|cudaMemcpyToSymbol)\s*\(/g) {
        my $line = 1 + (substr($code, 0, $-[0]) =~ tr/\n//);
        print "$f:$line: $1: legacy stream or device-wide wait; use the backend stream\n";
        $bad = 1;
    }
    while ($code =~ /^\s*static\s+(?!const\b)vnp_backend_ops\b/mg) {
        my $line = 1 + (substr($code, 0, $-[0]) =~ tr/\n//);
        print "$f:$line: the ops table must be static const\n";
        $bad = 1;
    }
    END { exit($bad ? 1 : 0) }
' "$dir"/*.cu "$dir"/*.cuh
