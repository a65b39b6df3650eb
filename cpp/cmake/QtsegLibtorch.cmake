# Optional libtorch backend: runs AOTInductor packages (format "aoti", model.pt2).
# Included by QtsegDependencies.cmake. QTSEG_WITH_LIBTORCH: OFF (default: libtorch
# is large and slow to configure), AUTO (if found) or ON (required).
#
# Torch is found through its CMake package, which the torch pip wheel ships:
#   -DTorch_DIR=<site-packages>/torch/share/cmake/Torch, or (default) the prefix
#   printed by `python -c "import torch; print(torch.utils.cmake_prefix_path)"`.
# Sets QTSEG_HAVE_LIBTORCH and appends "libtorch" to QTSEG_BACKENDS.

set(QTSEG_WITH_LIBTORCH OFF CACHE STRING "libtorch (AOTInductor .pt2) backend: OFF (default), AUTO, ON")
set_property(CACHE QTSEG_WITH_LIBTORCH PROPERTY STRINGS AUTO ON OFF)
set(QTSEG_HAVE_LIBTORCH FALSE)
qtseg_backend_wanted(QTSEG_WITH_LIBTORCH _want)
if(_want)
  if(NOT Torch_DIR AND NOT DEFINED ENV{Torch_DIR})
    # Ask the Pythons in reach where their torch wheel keeps TorchConfig.cmake:
    # QTSEG_PYTHON, the active virtualenv's, then python3 on PATH.
    set(_pythons "")
    if(QTSEG_PYTHON)
      list(APPEND _pythons "${QTSEG_PYTHON}")
    endif()
    if(DEFINED ENV{VIRTUAL_ENV})
      list(APPEND _pythons "$ENV{VIRTUAL_ENV}/bin/python3")
    endif()
    find_program(_path_python NAMES python3 python NO_CACHE)
    if(_path_python)
      list(APPEND _pythons "${_path_python}")
    endif()
    foreach(_py IN LISTS _pythons)
      execute_process(
        COMMAND "${_py}" -c "import torch; print(torch.utils.cmake_prefix_path)"
        OUTPUT_VARIABLE _torch_prefix RESULT_VARIABLE _torch_rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
      if(_torch_rc EQUAL 0 AND EXISTS "${_torch_prefix}/Torch/TorchConfig.cmake")
        set(Torch_DIR "${_torch_prefix}/Torch" CACHE PATH "Directory with TorchConfig.cmake" FORCE)
        break()
      endif()
    endforeach()
  endif()
  find_package(Torch CONFIG QUIET)
  if(Torch_FOUND)
    set(QTSEG_HAVE_LIBTORCH TRUE)
    list(APPEND QTSEG_BACKENDS libtorch)
    set(_torch_kind "CPU-only")
    if(TORCH_CUDA_LIBRARIES)
      # a CUDA build of torch: compile the CUDA-graph replay of the libtorch backend
      add_compile_definitions(QTSEG_LIBTORCH_CUDA)
      set(_torch_kind "CUDA, CUDA-graph replay on")
    endif()
    qtseg_backend_status(libtorch QTSEG_WITH_LIBTORCH TRUE "libtorch (${_torch_kind}) from ${Torch_DIR}")
  else()
    qtseg_backend_status(libtorch QTSEG_WITH_LIBTORCH FALSE
      "no TorchConfig.cmake; pass -DTorch_DIR=<site-packages>/torch/share/cmake/Torch (pip install torch)")
  endif()
else()
  qtseg_backend_status(libtorch QTSEG_WITH_LIBTORCH FALSE "")
endif()
