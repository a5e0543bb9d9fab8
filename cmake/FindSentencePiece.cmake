# FindSentencePiece: sentencepiece ships no CMake config, so we find it here.
# Defines the imported target SentencePiece::SentencePiece and
# SentencePiece_FOUND, SentencePiece_INCLUDE_DIR, SentencePiece_LIBRARY.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_SentencePiece QUIET sentencepiece)
endif()
find_path(SentencePiece_INCLUDE_DIR sentencepiece_processor.h
  HINTS ${PC_SentencePiece_INCLUDE_DIRS})
find_library(SentencePiece_LIBRARY NAMES sentencepiece
  HINTS ${PC_SentencePiece_LIBRARY_DIRS})
find_library(SentencePiece_TRAIN_LIBRARY NAMES sentencepiece_train
  HINTS ${PC_SentencePiece_LIBRARY_DIRS})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(SentencePiece
  REQUIRED_VARS SentencePiece_LIBRARY SentencePiece_INCLUDE_DIR
  VERSION_VAR PC_SentencePiece_VERSION)
if(SentencePiece_FOUND AND NOT TARGET SentencePiece::SentencePiece)
  add_library(SentencePiece::SentencePiece UNKNOWN IMPORTED)
  set_target_properties(SentencePiece::SentencePiece PROPERTIES
    IMPORTED_LOCATION "${SentencePiece_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${SentencePiece_INCLUDE_DIR}")
  if(SentencePiece_TRAIN_LIBRARY AND NOT TARGET SentencePiece::Train)
    add_library(SentencePiece::Train UNKNOWN IMPORTED)
    set_target_properties(SentencePiece::Train PROPERTIES
      IMPORTED_LOCATION "${SentencePiece_TRAIN_LIBRARY}"
      INTERFACE_LINK_LIBRARIES SentencePiece::SentencePiece)
  endif()
endif()
mark_as_advanced(SentencePiece_INCLUDE_DIR SentencePiece_LIBRARY SentencePiece_TRAIN_LIBRARY)
