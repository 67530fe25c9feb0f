from genattr.cli.main import main

main()
