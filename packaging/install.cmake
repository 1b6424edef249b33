# `cmake --install`: bin/virnucpro (RPATH $ORIGIN/../lib, as DT_RPATH so that it also
# covers the libraries' own dependencies when they are bundled), the man page generated
# from the binary's help texts, bash and zsh completions, the documentation and the
# workflows under share/. CPack: a .deb declaring its Debian dependencies, and a
# relocatable .tar.gz bundling every library the binary needs beyond glibc (see
# bundle_libs.cmake). One command builds both: scripts/package.sh.
set_target_properties(virnucpro_cli PROPERTIES INSTALL_RPATH "$ORIGIN/../lib")
target_link_options(virnucpro_cli PRIVATE "LINKER:--disable-new-dtags")

set(VNP_MAN ${CMAKE_CURRENT_BINARY_DIR}/virnucpro.1)
add_custom_command(OUTPUT ${VNP_MAN}
  COMMAND ${CMAKE_COMMAND} -DVNP_BIN=$<TARGET_FILE:virnucpro_cli> -DVNP_OUT=${VNP_MAN}
          -DVNP_VERSION=${PROJECT_VERSION} -P ${CMAKE_CURRENT_SOURCE_DIR}/packaging/man_page.cmake
  DEPENDS virnucpro_cli ${CMAKE_CURRENT_SOURCE_DIR}/packaging/man_page.cmake
  COMMENT "man page virnucpro.1 from the help texts")
add_custom_target(virnucpro_man ALL DEPENDS ${VNP_MAN})

install(TARGETS virnucpro_cli RUNTIME DESTINATION bin)
install(FILES ${VNP_MAN} DESTINATION share/man/man1)
install(FILES packaging/virnucpro.bash DESTINATION share/bash-completion/completions
        RENAME virnucpro)
install(FILES packaging/_virnucpro DESTINATION share/zsh/vendor-completions)
install(FILES README.md docs/MODELS.md DESTINATION share/doc/virnucpro)
foreach(lic LICENSE LICENSE.md COPYING)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${lic})
    install(FILES ${lic} DESTINATION share/doc/virnucpro)
  endif()
endforeach()
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/workflow)
  install(DIRECTORY workflow/ DESTINATION share/virnucpro/workflow
          USE_SOURCE_PERMISSIONS PATTERN "__pycache__" EXCLUDE PATTERN ".snakemake" EXCLUDE)
endif()
# the tarball's libraries (only when CPack's TGZ generator installs: cpack_config.cmake)
install(CODE "set(VNP_BIN \"$<TARGET_FILE:virnucpro_cli>\")")
install(SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/packaging/bundle_libs.cmake)

set(CPACK_PACKAGE_NAME virnucpro)
set(CPACK_PACKAGE_VENDOR "VirNucPro in C")
set(CPACK_PACKAGE_CONTACT "VirNucPro in C maintainers <virnucpro@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "identify viral DNA sequences with ESM-2 + DNABERT-S embeddings (VirNucPro in C)")
set(CPACK_GENERATOR "DEB;TGZ")
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_CURRENT_SOURCE_DIR}/packaging/cpack_config.cmake)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/Li-Jing-1997/VirNucPro")
# What the binary links, by Debian 12 package (tests/cli/test_install.c checks that every
# library ldd lists beyond glibc comes from one of these).
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libc6 (>= 2.34), zlib1g, libbz2-1.0, liblzma5, libzstd1, libcjson1, libopenblas0 | libopenblas0-pthread, libcurl4, libssl3")
if(VNP_HAVE_CUDA)
  # the CUDA objects and runtime are C++: libstdc++ and libgcc_s come with them
  string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", libstdc++6, libgcc-s1")
  set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
      "${CPACK_PACKAGE_DESCRIPTION_SUMMARY}\n Built with the CUDA backend: needs the CUDA runtime and cuBLAS\n libraries of the toolkit it was built with (NVIDIA's, not Debian's).")
endif()
include(CPack)
