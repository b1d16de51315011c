# bash completion for imctl(1)                                  -*- shell-script -*-
#
# Subcommands, their options, and values where imctl can know them:
# conversation ids from the running imd (`imctl list`; nothing, silently,
# when imd is not running or is slow), property names, files.
#
# Works with and without the bash-completion package: it reads COMP_WORDS
# itself, where "--color=al" arrives as "--color" "=" "al" (= breaks words).

_imctl_commands="login logout status get list history send send-custom send-file
    record resend emoji fetch search react revoke edit read typing monitor events chat help"
_imctl_global_options="--json --timeout --color --help"
# options that take a value, as separate words
_imctl_value_options="--timeout --url --ca-file --limit --before --description --extension
    --name --mime --type --duration --conversation --since --search"

_imctl_command_options() {
    case $1 in
        login)          echo "--url --ca-file --remember" ;;
        history)        echo "--limit --before" ;;
        send-custom)    echo "--description --extension" ;;
        send-file)      echo "--name --mime --type --no-wait" ;;
        record)         echo "--duration" ;;
        emoji)          echo "--search" ;;
        search)         echo "--conversation --limit" ;;
        monitor|events) echo "--since" ;;
    esac
}

# Conversation ids: the first field of each `imctl list` line. The text form
# rather than --json: a completion cannot count on a JSON parser, and ids
# (bare JIDs) never hold white space.
_imctl_conversations() {
    local imctl=$1
    "$imctl" --color=never --timeout 2 list 2>/dev/null </dev/null | while read -r id _; do
        printf '%s\n' "$id"
    done
}

# Adds the conversation ids that start with $2 to COMPREPLY, quoted for the
# command line. Never through `compgen -W`, which expands its word list: a
# peer picks its own JID ("$(cmd)@x" and "{a,b}@x" are valid), and that would
# run as a command. Quoted with %q rather than by -o filenames, which leaves
# "$" and ")" as they are; what was typed may be either form.
_imctl_complete_conversations() {
    local id quoted
    while IFS= read -r id; do
        printf -v quoted '%q' "$id"
        if [[ $id == "$2"* || $quoted == "$2"* ]]; then
            COMPREPLY+=("$quoted")
        fi
    done < <(_imctl_conversations "$1")
}

_imctl() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local prev=${COMP_WORDS[COMP_CWORD-1]}
    local imctl=${COMP_WORDS[0]}
    local command= npos=0 i w skip=0
    COMPREPLY=()

    # --color=WHEN
    if [[ $prev == "=" && ${COMP_WORDS[COMP_CWORD-2]} == --color ]]; then
        COMPREPLY=($(compgen -W "auto always never" -- "$cur"))
        return 0
    fi
    if [[ $cur == "=" && $prev == --color ]]; then
        COMPREPLY=(auto always never)
        return 0
    fi

    # the command, and how many positional arguments precede the cursor
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if ((skip)); then
            skip=0
            continue
        fi
        if [[ $w == "=" ]]; then
            skip=1      # "--opt" "=" "value": the value follows
            continue
        fi
        if [[ $w == -* ]]; then
            if [[ " "$(echo $_imctl_value_options)" " == *" $w "* && ${COMP_WORDS[i+1]} != "=" ]]; then
                skip=1
            fi
            continue
        fi
        if [[ -z $command ]]; then
            command=$w
        else
            ((npos++))
        fi
    done

    # the value of an option
    case $prev in
        --ca-file)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
            return 0 ;;
        --conversation)
            _imctl_complete_conversations "$imctl" "$cur"
            return 0 ;;
        --type)
            COMPREPLY=($(compgen -W "image video audio file" -- "$cur"))
            return 0 ;;
        --timeout|--url|--limit|--before|--description|--extension|--name|--mime|--duration|--since|--search)
            return 0 ;;
    esac

    if [[ -z $command ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$_imctl_global_options" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$_imctl_commands" -- "$cur"))
        fi
        return 0
    fi

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_imctl_command_options "$command") $_imctl_global_options" -- "$cur"))
        return 0
    fi

    case $command:$npos in
        history:0|send:0|send-custom:0|send-file:0|record:0|resend:0|fetch:0|react:0|revoke:0|edit:0|read:0|typing:0|chat:0)
            _imctl_complete_conversations "$imctl" "$cur" ;;
        send-file:1)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur")) ;;
        typing:1)
            COMPREPLY=($(compgen -W "on off" -- "$cur")) ;;
        get:0)
            COMPREPLY=($(compgen -W "Account NetState Ready UnreadTotal Recording LastEvent" -- "$cur")) ;;
    esac
    return 0
}

complete -F _imctl imctl
