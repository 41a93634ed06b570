from ganscapes.cli import main

main()
