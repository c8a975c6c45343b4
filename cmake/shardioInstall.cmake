# Install rules (SHARDIO_INSTALL): headers, the library, a CMake package
# (shardioConfig.cmake, shardioConfigVersion.cmake, shardioTargets.cmake,
# namespace shardio::) and a pkg-config file, shardio.pc.
#
#   cmake --install <build> --prefix <prefix>
#   find_package(shardio 0.1 CONFIG REQUIRED)  ->  shardio::shardio
#   pkg-config --cflags --libs shardio
include(CMakePackageConfigHelpers)

set(SHARDIO_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/shardio" CACHE STRING
    "Where shardioConfig.cmake goes, relative to the install prefix")
mark_as_advanced(SHARDIO_INSTALL_CMAKEDIR)

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/shardio"
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        COMPONENT shardio_Development
        FILES_MATCHING PATTERN "*.h")

install(TARGETS shardio EXPORT shardioTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT shardio_Development
        LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT shardio_Runtime
                NAMELINK_COMPONENT shardio_Development
        RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT shardio_Runtime)

install(EXPORT shardioTargets
        NAMESPACE shardio::
        DESTINATION "${SHARDIO_INSTALL_CMAKEDIR}"
        COMPONENT shardio_Development)

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/shardioConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/shardioConfig.cmake"
  INSTALL_DESTINATION "${SHARDIO_INSTALL_CMAKEDIR}")
# 0.x: a minor release may break the API, so 0.1 accepts 0.1.* only.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/shardioConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/shardioConfig.cmake"
              "${PROJECT_BINARY_DIR}/shardioConfigVersion.cmake"
        DESTINATION "${SHARDIO_INSTALL_CMAKEDIR}"
        COMPONENT shardio_Development)

# shardio.pc: relocatable (paths relative to ${pcfiledir}) where the install
# dirs are relative, so `cmake --install --prefix X` needs no reconfigure.
set(_shardio_pcdir "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(SHARDIO_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _shardio_up "/_p/${_shardio_pcdir}" "/_p")
  string(REGEX REPLACE "/$" "" _shardio_up "${_shardio_up}")
  set(SHARDIO_PC_PREFIX "\${pcfiledir}/${_shardio_up}")
endif()
foreach(_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_dir}}")
    set(SHARDIO_PC_${_dir} "${CMAKE_INSTALL_${_dir}}")
  else()
    set(SHARDIO_PC_${_dir} "\${prefix}/${CMAKE_INSTALL_${_dir}}")
  endif()
endforeach()
configure_file("${CMAKE_CURRENT_LIST_DIR}/shardio.pc.in"
               "${PROJECT_BINARY_DIR}/shardio.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/shardio.pc"
        DESTINATION "${_shardio_pcdir}"
        COMPONENT shardio_Development)
unset(_shardio_pcdir)
unset(_shardio_up)
unset(_dir)
