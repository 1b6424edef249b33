# Install step of the relocatable tarball (CPack TGZ: cpack_config.cmake sets
# VNP_BUNDLE_LIBS): copies every shared library the binary needs, directly or through
# another library, into <prefix>/lib, except glibc's own (libc, libm, libpthread, libdl,
# librt, libresolv, the loader), which every Linux system has and which must match its
# kernel, and the NVIDIA driver's libcuda. The binary's DT_RPATH $ORIGIN/../lib then finds
# them wherever the tarball is unpacked.
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
set(dest "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/lib")
foreach(d IN LISTS deps)
  file(INSTALL "${d}" DESTINATION "${dest}" FOLLOW_SYMLINK_CHAIN)
endforeach()
list(LENGTH deps n)
message(STATUS "bundle_libs: ${n} libraries into ${dest}")
