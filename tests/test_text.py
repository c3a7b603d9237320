from regional_chat.text import language_of, script_of


def test_script_and_language_of_the_corpus_languages():
    assert script_of("Where is the UNRCCA?") == "latin" and script_of("Где РЦПДЦА?") == "cyrillic"
    assert script_of("2007") == "latin"  # no letters: taken as Latin
    assert language_of("Where is the UNRCCA?") == "english"
    assert language_of("Где находится штаб-квартира РЦПДЦА?") == "russian"
    assert language_of("Қазақстан Республикасы Орталық Азиядағы мемлекет.") == "kazakh"
    assert language_of("Бұл су туралы келісім") == "kazakh"
