# bash completion for virnucpro. The commands and each command's options are read from
# the installed binary's own --help (so they always match it); files complete otherwise.
_virnucpro()
{
    local cur prev cmd words
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    if ((COMP_CWORD == 1)); then
        words=$("${COMP_WORDS[0]}" --help 2>/dev/null |
                sed -n '/^Commands:/,$ s/^  \([a-z][a-z-]*\) .*/\1/p')
        COMPREPLY=($(compgen -W "$words --help --version" -- "$cur"))
        return
    fi
    cmd=${COMP_WORDS[1]}
    case $prev in
        -o|--output|--esm|--dnabert|--model|--dir)
            COMPREPLY=($(compgen -d -- "$cur")); compopt -o filenames 2>/dev/null; return ;;
        --device)
            COMPREPLY=($(compgen -W "auto cpu cuda cuda:0 cuda:1" -- "$cur")); return ;;
        --precision)
            COMPREPLY=($(compgen -W "fp16 bf16 fp32" -- "$cur")); return ;;
        -l|--length)
            COMPREPLY=($(compgen -W "300 500" -- "$cur")); return ;;
    esac
    if [[ $cur == -* ]]; then
        # the option column of the help's option lines ("  -o, --output DIR   text")
        words=$("${COMP_WORDS[0]}" "$cmd" --help 2>/dev/null | grep -E '^ +-' |
                sed -e 's/^ *//' -e 's/  .*//' | grep -oE -- '--?[a-zA-Z][a-zA-Z0-9-]*' |
                sort -u)
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return
    fi
    COMPREPLY=($(compgen -f -- "$cur"))
    compopt -o filenames 2>/dev/null
}
complete -F _virnucpro virnucpro
