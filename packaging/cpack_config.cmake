# Per-generator settings (CPACK_PROJECT_CONFIG_FILE): the .deb installs under /usr and uses
# Debian's libraries; the .tar.gz is relocatable and carries its libraries (bundle_libs.cmake).
if(CPACK_GENERATOR STREQUAL "TGZ")
  set(ENV{VNP_BUNDLE_LIBS} 1)
  set(CPACK_PACKAGING_INSTALL_PREFIX "/")
  set(CPACK_INCLUDE_TOPLEVEL_DIRECTORY ON)
else()
  set(ENV{VNP_BUNDLE_LIBS} "")
  set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
endif()
