from vitool.cli import main

main()
