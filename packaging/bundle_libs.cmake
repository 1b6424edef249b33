# Install step of the relocatable tarball (CPack TGZ: cpack_config.cmake sets
# VNP_BUNDLE_LIBS): copies every shared library the binary needs, directly or through
# another library, into <prefix>/lib, except glibc's own (libc, libm, libpthread, libdl,
# librt, libresolv, the loader), which every Linux system has and which must match its
# kernel, and the NVIDIA driver's libcuda. The binary's DT_RPATH $ORIGIN/../lib then finds
# them wherever the tarball is unpacked.
#
# A redistributed library carries its licence: beside each one, the Debian copyright file
# of the package that owns it (dpkg -S; /usr/share/doc/<package>/copyright) goes to
# share/doc/virnucpro/third-party/<package>/copyright. A library no Debian package owns (the
# CUDA runtime and cuBLAS of a toolkit) takes its toolkit's licence: the licences of the
# Python wheel whose RECORD lists it (<dir>/dist-info/*/ or <dir>/*.dist-info/), else an
# EULA.txt / LICENSE beside a parent directory. A library without a licence stops the
# packaging. share/doc/virnucpro/third-party/LIBRARIES.tsv lists library, package, licence
# (relative to share/doc/virnucpro) and the path it was copied from.
if(NOT "$ENV{VNP_BUNDLE_LIBS}")
  return()
endif()
file(GET_RUNTIME_DEPENDENCIES
  EXECUTABLES "${VNP_BIN}"
  RESOLVED_DEPENDENCIES_VAR deps
  UNRESOLVED_DEPENDENCIES_VAR missing
  PRE_EXCLUDE_REGEXES "^ld-linux" "^linux-vdso" "^libc\\.so" "^libm\\.so" "^libdl\\.so"
                      "^libpthread\\.so" "^librt\\.so" "^libresolv\\.so" "^libutil\\.so"
                      "^libcuda\\.so"
  POST_EXCLUDE_REGEXES "/ld-linux[^/]*$" "/libc\\.so[^/]*$" "/libm\\.so[^/]*$")
if(missing)
  message(FATAL_ERROR "bundle_libs: unresolved libraries of ${VNP_BIN}: ${missing}")
endif()
set(root "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}")
set(dest "${root}/lib")
set(docs "${root}/share/doc/virnucpro")

# The Debian package owning a library (its path as resolved, its real path, or the other
# side of the /usr merge), or "".
function(vnp_debian_package lib out)
  file(REAL_PATH "${lib}" real)
  set(paths "${real}" "${lib}")
  foreach(p IN ITEMS "${real}" "${lib}")
    if(p MATCHES "^/usr(/lib.*)$")
      list(APPEND paths "${CMAKE_MATCH_1}")
    elseif(p MATCHES "^(/lib.*)$")
      list(APPEND paths "/usr${CMAKE_MATCH_1}")
    endif()
  endforeach()
  foreach(p IN LISTS paths)
    execute_process(COMMAND dpkg -S "${p}" OUTPUT_VARIABLE o RESULT_VARIABLE rc ERROR_QUIET)
    if(rc EQUAL 0 AND o MATCHES "^([a-z0-9][a-z0-9.+-]*)(:[a-z0-9]+)?: ")
      set(${out} "${CMAKE_MATCH_1}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out} "" PARENT_SCOPE)
endfunction()

# The licence files of a library no Debian package owns, and a name for their owner.
function(vnp_toolkit_licence lib out_name out_files)
  file(REAL_PATH "${lib}" real)
  get_filename_component(name "${lib}" NAME)
  get_filename_component(real_name "${real}" NAME)
  get_filename_component(dir "${real}" DIRECTORY)
  foreach(level RANGE 4)
    file(GLOB records "${dir}/dist-info/*/RECORD" "${dir}/*.dist-info/RECORD")
    foreach(rec IN LISTS records)
      file(STRINGS "${rec}" hit REGEX "(^|/)(${name}|${real_name}),")
      if(hit)
        get_filename_component(info "${rec}" DIRECTORY)
        file(GLOB lic "${info}/licenses/*" "${info}/LICENSE*" "${info}/License*")
        if(lic)
          get_filename_component(pkg "${info}" NAME)
          string(REGEX REPLACE "-[0-9][^/]*$" "" pkg "${pkg}")
          set(${out_name} "${pkg}" PARENT_SCOPE)
          set(${out_files} "${lic}" PARENT_SCOPE)
          return()
        endif()
      endif()
    endforeach()
    foreach(f EULA.txt LICENSE LICENSE.txt COPYING)
      if(EXISTS "${dir}/${f}")
        get_filename_component(pkg "${dir}" NAME)
        set(${out_name} "${pkg}" PARENT_SCOPE)
        set(${out_files} "${dir}/${f}" PARENT_SCOPE)
        return()
      endif()
    endforeach()
    get_filename_component(dir "${dir}" DIRECTORY)
  endforeach()
  set(${out_name} "" PARENT_SCOPE)
  set(${out_files} "" PARENT_SCOPE)
endfunction()

set(table "library\tpackage\tlicence\tsource\n")
foreach(d IN LISTS deps)
  file(INSTALL "${d}" DESTINATION "${dest}" FOLLOW_SYMLINK_CHAIN)
  get_filename_component(name "${d}" NAME)
  vnp_debian_package("${d}" pkg)
  set(lic "")
  if(pkg AND EXISTS "/usr/share/doc/${pkg}/copyright")
    # (the directory may be a link to another package's, as gcc-12-base's: the file is copied)
    file(REAL_PATH "/usr/share/doc/${pkg}/copyright" src)
    file(MAKE_DIRECTORY "${docs}/third-party/${pkg}")
    file(COPY_FILE "${src}" "${docs}/third-party/${pkg}/copyright" ONLY_IF_DIFFERENT)
    set(lic "third-party/${pkg}/copyright")
  elseif(NOT pkg)
    vnp_toolkit_licence("${d}" pkg files)
    foreach(f IN LISTS files)
      get_filename_component(fname "${f}" NAME)
      file(REAL_PATH "${f}" src)
      file(MAKE_DIRECTORY "${docs}/third-party/${pkg}")
      file(COPY_FILE "${src}" "${docs}/third-party/${pkg}/${fname}" ONLY_IF_DIFFERENT)
      if(NOT lic)
        set(lic "third-party/${pkg}/${fname}")
      endif()
    endforeach()
  endif()
  if(NOT lic)
    message(FATAL_ERROR
      "bundle_libs: no licence found for ${d} (Debian package: ${pkg}; no "
      "/usr/share/doc/<package>/copyright, no toolkit licence): the tarball must not "
      "redistribute it without one; install its package's documentation, or build without it "
      "(scripts/package.sh --no-cuda for the CUDA libraries)")
  endif()
  string(APPEND table "${name}\t${pkg}\t${lic}\t${d}\n")
endforeach()
file(WRITE "${docs}/third-party/LIBRARIES.tsv" "${table}")
list(LENGTH deps n)
message(STATUS "bundle_libs: ${n} libraries into ${dest}, their licences under ${docs}/third-party")
