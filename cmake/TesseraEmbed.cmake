# tessera_embed(OUTPUT <file.cc> FUNCTION <name> FILES <abs paths...>)
#
# Generates a C++ source defining `std::span<const tessera::EmbeddedFile> <name>()` whose
# entries hold the files' names and contents, so data (GPU specs, device templates) is part
# of the binary and never looked up at run time. Regenerated when any input changes.
set(TESSERA_EMBED_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/tessera_embed_run.cmake)

function(tessera_embed)
  cmake_parse_arguments(ARG "" "OUTPUT;FUNCTION" "FILES" ${ARGN})
  list(JOIN ARG_FILES "|" files_joined)
  add_custom_command(
    OUTPUT ${ARG_OUTPUT}
    COMMAND ${CMAKE_COMMAND} -DOUTPUT=${ARG_OUTPUT} -DFUNCTION=${ARG_FUNCTION}
            "-DFILES=${files_joined}" -P ${TESSERA_EMBED_SCRIPT}
    DEPENDS ${ARG_FILES} ${TESSERA_EMBED_SCRIPT}
    COMMENT "Embedding ${ARG_FUNCTION}"
    VERBATIM)
endfunction()
