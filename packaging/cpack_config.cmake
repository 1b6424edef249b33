# Per-generator settings (CPACK_PROJECT_CONFIG_FILE): the .deb installs under /usr and uses
# Debian's libraries; the .tar.gz is relocatable and carries its libraries (bundle_libs.cmake).
# TZST makes the same tarball compressed with zstd: test_install builds that one (seconds,
# where gzip takes about a minute for the CUDA build's 670 MB); releases ship TGZ.
if(CPACK_GENERATOR MATCHES "^T(GZ|ZST)$")
  set(ENV{VNP_BUNDLE_LIBS} 1)
  set(CPACK_PACKAGING_INSTALL_PREFIX "/")
  set(CPACK_INCLUDE_TOPLEVEL_DIRECTORY ON)
else()
  set(ENV{VNP_BUNDLE_LIBS} "")
  set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
endif()
