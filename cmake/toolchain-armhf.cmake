# Cross build for 32-bit Raspberry Pi OS (armhf: ARMv7, hard float, NEON)
# with Debian's gcc-arm-linux-gnueabihf. Libraries (inih, cJSON, cmocka) come
# from Debian's multiarch armhf packages (scripts/deps.sh arm installs them);
# executables link dynamically and run under qemu-arm-static with the armhf
# loader multiarch put in /lib.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_C_FLAGS_INIT "-march=armv7-a -mfpu=neon -mfloat-abi=hard")
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm-static)
